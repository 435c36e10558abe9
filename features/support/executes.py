"""Executes as the steps send them: the sample action (:data:`NOTIFY`, :func:`notify`), one
``POST /actions/execute`` (:func:`post_execute`, the only place an execute is sent synchronously), an
execute as the client saw it (:class:`Execution`, :func:`execute`), and one that waits out a quota
other scenarios share (:func:`admitted_execute`). The rate-limit steps read the same request as a
:class:`~features.support.rate_limit_support.Hit` (:func:`~features.support.rate_limit_support.execute_hit`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from gate.client.target import Credential, Target
from gate.oracles import ratelimit

EXECUTE_ENDPOINT = "/actions/execute"

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
