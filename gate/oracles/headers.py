"""The security header sets the gate expects, per profile: written from docs/service.md, never imported
from the service.

The profiles are the table of docs/service.md ("Security headers"): ``strict`` (the default, OWASP
Secure Headers Project values for a JSON API) and ``seed`` (the sprint-51 report's values, kept for
fidelity). A header the service drops from its own profile must still be expected here:
``tests/gate/test_oracle_headers.py`` holds these to the documented table, and
``tests/service/test_headers.py`` holds the service's profiles to the same table, so neither can drift
without a test naming the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# the seed report's policy, verbatim (seed/sprint-51-phase2-status.md, "Headers Added")
SEED_CSP = (
    "default-src 'self'; connect-src 'self' https://relay-production-f2a6.up.railway.app "
    "https://*.vercel.app; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_SEED: dict[str, str] = {
    "Strict-Transport-Security": "max-age=15552000; includeSubDomains; preload",
    "Content-Security-Policy": SEED_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "1; mode=block",
    "Cache-Control": "no-store",
}
_STRICT: dict[str, str] = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": STRICT_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "0",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Permissions-Policy": "accelerometer=(), camera=(), geolocation=(), microphone=(), payment=(), usb=()",
    "X-Permitted-Cross-Domain-Policies": "none",
    "Cache-Control": "no-store",
}

# read-only: a step that edits what it was given must not change what the next one expects
PROFILES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"strict": MappingProxyType(_STRICT), "seed": MappingProxyType(_SEED)}
)

# headers that advertise the implementation: removed from every response (docs/service.md)
FORBIDDEN: tuple[str, ...] = ("Server", "X-Powered-By")


def profile(name: str) -> dict[str, str]:
    """A copy of the expected header set of profile ``name`` (KeyError names the known ones)."""
    try:
        return dict(PROFILES[name])
    except KeyError:
        raise KeyError(f"unknown security header profile {name!r}; known: {sorted(PROFILES)}") from None
