"""What one execute made the relay do, as the gate's receiver saw it: the delivery scenarios' helpers.

:func:`reply_for` turns a table's words ("503 with Retry-After: 2", "301 to another path of the
receiver", "200 trickled over WEBHOOK_TIMEOUT_S + 2.5 s") into a reply of the receiver's script
(gate/stack/receiver.py). :func:`execute_through` executes and collects the execute's attempts: the captures
after it that carry its webhook-id or its X-Request-ID, or that arrived at the path a scripted redirect
pointed to, with their arrival times on the receiver's clock. WEBHOOK_TIMEOUT_S, WEBHOOK_MAX_ATTEMPTS
and WEBHOOK_BACKOFF_BASE_S are the target's (``[deliveries]`` of its config; the stack's own).
"""

from __future__ import annotations

import email.utils
import itertools
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from features.support import skips
from features.support.executes import Execution, admitted_execute
from features.support.recording import ExchangeRecorder
from gate.client.receiver import Capture, ReceiverClient
from gate.client.target import Credential, Target

MAX_RETRY_AFTER_S = 30.0  # docs/webhooks.md: Retry-After is honoured up to 30 s
MAX_BACKOFF_S = 30.0  # docs/webhooks.md: the backoff bound is capped at 30 s
REDIRECTED = "/_gate-redirected/"  # where a scripted redirect points (the receiver captures it)
# what scheduling on a busy machine may add to a wait the relay makes (both ends on loopback)
SLACK_S = 1.0


def backoff_bound(target: Target, n: int) -> float:
    """The most the relay may wait before attempt n+1 (docs/webhooks.md, WEBHOOK_BACKOFF_BASE_S)."""
    return min(MAX_BACKOFF_S, target.delivery_backoff_base_s * 2 ** (n - 1))


def execute_budget_s(target: Target) -> float:
    """How long an execute may take before the gate stops waiting: every attempt timing out, every
    backoff at its bound, and one Retry-After at its 30 s limit, plus slack."""
    n = target.delivery_max_attempts
    backoffs = sum(backoff_bound(target, k) for k in range(1, n))
    return n * (target.delivery_timeout_s + SLACK_S) + backoffs + MAX_RETRY_AFTER_S + 5.0


# -- the receiver's answers, in words ---------------------------------------------------------------

_ANSWERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\d{3})"), "status"),
    (re.compile(r"(\d{3}) with Retry-After: (\d+)"), "retry-after"),
    (re.compile(r"(\d{3}) with Retry-After: an HTTP-date (\d+) s ahead"), "retry-after-date"),
    (re.compile(r"(\d{3}) to another path of the receiver"), "redirect"),
    (re.compile(r"the connection closed without an answer"), "drop"),
    (re.compile(r"200 after WEBHOOK_TIMEOUT_S \+ ([\d.]+) s"), "late"),
    (re.compile(r"200 trickled over WEBHOOK_TIMEOUT_S \+ ([\d.]+) s"), "trickle"),
]


def reply_for(answer: str, *, target: Target) -> dict[str, Any]:
    """The receiver reply (gate/stack/receiver.py's script) a table's words ask for."""
    for pattern, kind in _ANSWERS:
        m = pattern.fullmatch(answer.strip())
        if m is None:
            continue
        if kind == "status":
            return {"status": int(m[1])}
        if kind == "retry-after":
            return {"status": int(m[1]), "headers": {"Retry-After": m[2]}}
        if kind == "retry-after-date":
            # whole seconds from the next one on: the date never asks for less than it says
            when_ = email.utils.formatdate(math.ceil(time.time()) + int(m[2]), usegmt=True)
            return {"status": int(m[1]), "headers": {"Retry-After": when_}}
        if kind == "redirect":
            assert target.receiver_url is not None
            location = f"{target.receiver_url}{REDIRECTED}{uuid.uuid4().hex}"
            return {"status": int(m[1]), "headers": {"Location": location}}
        if kind == "drop":
            return {"drop": True}
        if kind == "late":
            return {"status": 200, "delay_s": target.delivery_timeout_s + float(m[1])}
        return {"status": 200, "trickle_s": target.delivery_timeout_s + float(m[1])}
    raise AssertionError(
        f"unknown receiver answer {answer!r}; known forms: {[p.pattern for p, _ in _ANSWERS]}"
    )


def rows(datatable: list[list[str]]) -> list[dict[str, str]]:
    head, *rows = datatable
    return [dict(zip([h.strip() for h in head], (c.strip() for c in r), strict=True)) for r in rows]


# -- what one execute made the relay do -------------------------------------------------------------


@dataclass
class Attempts:
    """One execute and the attempts the receiver captured for it, oldest first."""

    execution: Execution
    captures: list[Capture]
    answered_at: float  # when the execute's answer arrived (Unix seconds, the gate's clock)
    reply: dict[str, Any] = field(default_factory=dict)  # the first scripted answer, for tables

    @property
    def doc(self) -> dict[str, Any]:
        """The execute's result: its JSON, or the ``execution`` a 502 problem carries."""
        body = self.execution.json
        inner = body.get("execution")
        return inner if isinstance(inner, dict) else body

    @property
    def reported_attempts(self) -> int | None:
        value = (self.doc.get("delivery") or {}).get("attempts")
        return int(value) if isinstance(value, int) else None

    @property
    def status(self) -> int:
        return self.execution.response.status_code

    def gaps(self) -> list[float]:
        """Seconds between the arrivals of consecutive attempts."""
        t = [c.received_at for c in self.captures]
        return [round(b - a, 3) for a, b in itertools.pairwise(t)]

    def evidence(self) -> dict[str, Any]:
        return {
            "execute_status": self.status,
            "execute": {k: self.doc.get(k) for k in ("request_id", "webhook_id", "delivery")},
            "detail": self.execution.json.get("detail"),
            "attempts": [
                {
                    "seq": c.seq,
                    "path": c.path,
                    "method": c.method,
                    "received_at": c.received_at,
                    "webhook_id": c.header("webhook-id"),
                    "x_request_id": c.header("X-Request-ID"),
                    "webhook_timestamp": c.header("webhook-timestamp"),
                    "body_bytes": len(c.body),
                }
                for c in self.captures
            ],
            "gaps_s": self.gaps(),
        }


def _belongs(c: Capture, doc: dict[str, Any]) -> bool:
    return (
        c.header("webhook-id") == doc.get("webhook_id")
        or c.header("X-Request-ID") == doc.get("request_id")
        or c.path.startswith(REDIRECTED)
    )


def collect(receiver: ReceiverClient, execution: Execution, *, after: int, answered_at: float) -> Attempts:
    a = Attempts(execution, [], answered_at)
    a.captures = sorted((c for c in receiver.captures(after) if _belongs(c, a.doc)), key=lambda c: c.seq)
    return a


def execute_through(
    recorder: ExchangeRecorder,
    base_url: str,
    dev: Credential,
    receiver: ReceiverClient,
    target: Target,
    body: dict[str, Any],
) -> Attempts:
    """Execute ``body`` on ``base_url`` and collect the attempts the receiver saw for it."""
    after = receiver.last_seq()
    with recorder.client(base_url, timeout=execute_budget_s(target)) as client:
        try:
            ex = admitted_execute(client, dev, body, target=target)
        except httpx.TimeoutException:
            raise AssertionError(
                f"the execute did not answer within {execute_budget_s(target):.0f} s: every attempt "
                f"bounded by WEBHOOK_TIMEOUT_S ({target.delivery_timeout_s:g} s), every Retry-After by "
                f"{MAX_RETRY_AFTER_S:g} s, at most {target.delivery_max_attempts} attempts"
            ) from None
    return collect(receiver, ex, after=after, answered_at=time.time())


def need_attempts(target: Target, n: int) -> None:
    if target.delivery_max_attempts < n:
        skips.not_applicable(
            f"{target.name}: the scenario needs {n} attempts of one delivery and the target makes "
            f"{target.delivery_max_attempts} at most ([deliveries].max_attempts)"
        )
