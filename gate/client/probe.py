"""The one reachability probe: before the first scenario or the first load request, one GET of the
target's ``/``, connected exactly as they will be (TLS verified, proxies as configured). An answer of
any status will do; no answer is exit 5 with the reason, naming TLS and its fix when that is why.

``relay-gate check`` and ``run`` (gate/commands/check.py), ``relay-gate load`` and the scenarios' own
session (features/conftest.py) all probe with this.
"""

from __future__ import annotations

import httpx

from gate.client.transport import Transport, tls_failure
from gate.errors import InfrastructureError

PROBE_TIMEOUT_S = 5.0
TLS_DOC = "docs/gate.md, TLS and proxies"  # where a TLS failure's fix is explained


def unreachable(url: str, exc: BaseException, *, timeout_s: float | None = None) -> str:
    """Why ``url`` could not be reached, naming TLS and its fix when that is the cause."""
    tls = tls_failure(exc)
    if tls is not None:
        return (
            f"target {url}: TLS failed ({tls}); the gate verifies every certificate — give the CA that "
            f"signs it in [tls].ca_bundle (and a client certificate in [tls].client_cert if the target "
            f"asks for one) of the target config ({TLS_DOC})"
        )
    within = f" within {timeout_s:g} s" if timeout_s else ""
    return (
        f"target {url} is unreachable ({type(exc).__name__}{within}); check the URL, that the service "
        "is up, the network, and proxies ([network].proxies_from_env)"
    )


def probe(base_url: str, transport: Transport, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """One GET of ``base_url``'s ``/``, as the scenarios will connect; any answer will do.
    InfrastructureError (exit 5) when it cannot be reached, naming TLS when that is why."""
    url = f"{base_url.rstrip('/')}/"
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, **transport.httpx_options(url)) as c:
            c.get(url)
    except httpx.HTTPError as exc:
        raise InfrastructureError(unreachable(base_url, exc, timeout_s=timeout_s)) from None
