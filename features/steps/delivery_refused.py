"""Steps for the refused-connection scenario of features/delivery.feature: a relay replica of the
gate's (reference stack only, @needs-control) whose WEBHOOK_URL is a loopback port that refuses every
connection, and what the execute says of the attempts it made there.

The gate's receiver always listens, so a connection it refuses cannot be scripted; the port here is
held by a socket that is bound and never listens (the kernel answers a connect with a reset, and no
other process can take the port meanwhile).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from features.support.delivery_attempts import Attempts, execute_budget_s
from features.support.executes import admitted_execute, message, notify
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, Target


@dataclass(frozen=True)
class RefusingReplica:
    base_url: str
    webhook_url: str
    max_attempts: int


def _refusing_port(request: pytest.FixtureRequest) -> int:
    """A loopback port that refuses connections until the scenario ends."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))  # bound, never listen(): a connect is refused at once
    request.addfinalizer(held.close)
    return int(held.getsockname()[1])


@given(
    parsers.parse(
        "a relay replica with WEBHOOK_MAX_ATTEMPTS={attempts:d} whose WEBHOOK_URL is a port that refuses "
        "connections"
    ),
    target_fixture="refusing",
)
def _(target: Target, attempts: int, request: pytest.FixtureRequest) -> RefusingReplica:
    assert target.stack is not None, "needs the reference stack (@needs-control)"
    port = _refusing_port(request)  # its finalizer runs after the replica's: the port stays held
    webhook_url = f"http://127.0.0.1:{port}/refused"
    settings = {
        "WEBHOOK_URL": webhook_url,
        "WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{port}",
        "WEBHOOK_MAX_ATTEMPTS": str(attempts),
    }
    cm = target.stack.extra_replica(settings)
    url = cm.__enter__()
    request.addfinalizer(lambda: cm.__exit__(None, None, None))
    return RefusingReplica(url, webhook_url, attempts)


@when("the developer executes an action on the refusing replica", target_fixture="attempts")
def _(
    refusing: RefusingReplica,
    recorder: ExchangeRecorder,
    dev: Credential,
    target: Target,
    delivery_note: dict[str, Any],
) -> Attempts:
    with recorder.client(refusing.base_url, timeout=execute_budget_s(target)) as client:
        ex = admitted_execute(client, dev, notify(message("refused")), target=target)
    a = Attempts(ex, [], time.time())  # nothing to capture: no attempt got through
    delivery_note["refusing"] = {
        "WEBHOOK_URL": refusing.webhook_url,
        "WEBHOOK_MAX_ATTEMPTS": refusing.max_attempts,
    }
    delivery_note["deliveries"] = [a.evidence()]
    return a


@then(parsers.parse("the execute answered 502 naming the refused connection and reporting {n:d} attempts"))
def _(attempts: Attempts, n: int) -> None:
    assert attempts.status == 502, (
        f"the execute answered {attempts.status}: {attempts.execution.response.text[:300]}"
    )
    detail = str(attempts.execution.json.get("detail") or "")
    assert "connect" in detail.lower(), f"the 502 does not say the connection failed: {detail!r}"
    got = attempts.reported_attempts
    why = (
        "a refused connection must be retried like any connection error"
        if got is None or got < n
        else "more attempts than WEBHOOK_MAX_ATTEMPTS"
    )
    assert got == n, f"the execute reports {got} attempt(s), not {n}: {why} ({detail!r})"
