"""Executes as the steps send them, and the deliveries they cause.

The sample action (:data:`NOTIFY`, :func:`notify`, :func:`message`); one ``POST /actions/execute``
(:func:`post_execute`, the one place an execute is sent synchronously); an execute as the client saw it
(:class:`Execution`, :func:`execute`), and one that waits out a quota other scenarios share
(:func:`admitted_execute`). The rate-limit steps read the same request as a
:class:`~features.support.rate_limit_support.Hit` (:func:`~features.support.rate_limit_support.execute_hit`).
A :class:`Delivery` is an execute and what the receiver captured for it (:func:`deliver`,
:func:`captured_attempts`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from gate.client.receiver import Capture, ReceiverClient
from gate.client.target import Credential, Target
from gate.oracles import ratelimit

EXECUTE_ENDPOINT = "/actions/execute"
DELIVERY_TIMEOUT_S = 10.0

NOTIFY: dict[str, Any] = {
    "action": "notify.send",
    "params": {"channel": "release-gate", "message": "relay-gate acceptance run", "severity": "info"},
}


def notify(message: str = "relay-gate acceptance run") -> dict[str, Any]:
    return {
        "action": "notify.send",
        "params": {"channel": "release-gate", "message": message, "severity": "info"},
    }


@dataclass
class Execution:
    """One execute as the client saw it."""

    response: httpx.Response
    sent_at: float
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def json(self) -> dict[str, Any]:
        try:
            doc = self.response.json()
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}


def post_execute(
    client: httpx.Client,
    cred: Credential,
    body: dict[str, Any] | None = None,
    *,
    endpoint: str = EXECUTE_ENDPOINT,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` (the sample :data:`NOTIFY` when none) to ``endpoint`` with the key's Authorization
    and ``headers``; the answer as it came."""
    return client.post(
        endpoint, headers={**cred.authorization, **(headers or {})}, params=params, json=body or NOTIFY
    )


def execute(
    client: httpx.Client,
    cred: Credential,
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Execution:
    """One execute, with the time it was sent."""
    sent = time.time()
    r = post_execute(client, cred, body, headers=headers, params=params)
    return Execution(r, sent, body or NOTIFY)


def admitted_execute(
    client: httpx.Client,
    cred: Credential,
    body: dict[str, Any],
    *,
    target: Target,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Execution:
    """Execute; a 429 (the workspace's quota, shared with other scenarios) is waited out as its
    Retry-After says, within the target's rate-limit ``max_wait_s``. Any other answer is returned."""
    budget = target.rate_limit.max_wait_s if target.rate_limit is not None else 15.0
    deadline = time.monotonic() + budget
    while True:
        ex = execute(client, cred, body, headers=headers, params=params)
        if ex.response.status_code != 429:
            return ex
        # delay-seconds or an HTTP-date; 1 s when missing or malformed (the rate-limit scenarios judge that)
        retry_in = ratelimit.parse(ex.response.headers, now=time.time()).retry_in
        wait = max(0.05, retry_in if retry_in is not None else 1.0)
        if time.monotonic() + wait > deadline:
            return ex
        time.sleep(wait)


# -- deliveries, captured by the receiver -----------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One execute and what the receiver captured for it (every attempt with its webhook-id)."""

    execution: Execution
    attempts: tuple[Capture, ...]
    preview: dict[str, Any] | None = None

    @property
    def capture(self) -> Capture:
        return self.attempts[-1]  # the attempt that was answered 2xx (the last one)

    @property
    def body(self) -> bytes:
        return self.capture.body

    def header(self, name: str) -> str | None:
        return self.capture.header(name)


def captured_attempts(
    receiver: ReceiverClient, webhook_id: str, *, after: int, request_id: str | None = None
) -> tuple[Capture, ...]:
    """Every capture after ``after`` carrying ``webhook_id`` (or, when given, ``request_id`` as its
    X-Request-ID: an attempt whose webhook-id went wrong is still found, and judged by the scenario
    that checks ids), polled until one arrives or the deadline."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        caps = tuple(
            c
            for c in receiver.captures(after)
            if c.header("webhook-id") == webhook_id
            or (request_id is not None and c.header("X-Request-ID") == request_id)
        )
        if caps or time.monotonic() >= deadline:
            return caps
        time.sleep(0.02)


def deliver(
    client: httpx.Client,
    cred: Credential,
    receiver: ReceiverClient,
    target: Target,
    *,
    message: str,
    previewed: bool = True,
) -> Delivery:
    """Preview (optionally) and execute a notify action; require it delivered and captured."""
    preview = None
    body = notify(message)
    if previewed:
        p = client.post("/actions/preview", headers=cred.authorization, json=body)
        assert p.status_code == 200, f"preview answered {p.status_code}: {p.text[:300]}"
        preview = p.json()
        body = {"preview_id": preview["preview_id"]}
    after = receiver.last_seq()
    ex = admitted_execute(client, cred, body, target=target)
    assert ex.response.status_code == 200, (
        f"execute answered {ex.response.status_code}: {ex.response.text[:300]}"
    )
    webhook_id = ex.json.get("webhook_id")
    assert webhook_id, f"the execute response names no webhook_id: {ex.json}"
    attempts = captured_attempts(receiver, webhook_id, after=after, request_id=ex.json.get("request_id"))
    assert attempts, (
        f"the receiver got no delivery with webhook-id {webhook_id} within {DELIVERY_TIMEOUT_S:g} s "
        f"(execute answered {ex.json.get('delivery')})"
    )
    return Delivery(ex, attempts, preview)


def message(purpose: str) -> str:
    # non-ASCII on purpose: the body is UTF-8 JSON sent as is, and must be verified as bytes
    return f"relay-gate {purpose} — déploiement ✓ {uuid.uuid4().hex[:12]}"
