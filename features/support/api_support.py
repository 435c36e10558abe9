"""What the API-contract steps (features/steps/api_*.py, features/steps/audit_log.py) share: problem
documents judged, audit rows read, deliveries watched for, bodies padded to a size, metrics parsed.

Everything is observed over HTTP, as a client of the documented API would: the target's responses,
``GET /audit`` with an admin key, ``GET /metrics``, and the webhook receiver's captures.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from features.support.executes import Execution
from gate.client.receiver import Capture, ReceiverClient
from gate.client.target import Credential, Target

PROBLEM_TYPE = "application/problem+json"
# beyond the service's per-attempt delivery timeout, how long "nothing was delivered" is watched for
NO_DELIVERY_MARGIN_S = 0.5
DELIVERY_WAIT_S = 10.0


def ascii_notify(purpose: str, **extra: Any) -> dict[str, Any]:
    """A notify.send request whose body is ASCII (so "the previewed bytes" cannot depend on escaping)."""
    return {
        "action": "notify.send",
        "params": {"channel": "release-gate", "message": f"relay-gate {purpose} {uuid.uuid4().hex[:12]}"},
        **extra,
    }


# -- problem documents ---------------------------------------------------------------------------------


def problem_issues(r: httpx.Response, status: int | None = None) -> list[str]:
    """What keeps ``r`` from being the RFC 9457 problem document docs/service.md promises for every error:
    ``type``, ``title``, ``status`` (its own), ``detail`` and ``request_id`` (its X-Request-ID)."""
    issues = []
    if status is not None and r.status_code != status:
        issues.append(f"status {r.status_code}, expected {status}")
    if not r.headers.get("content-type", "").startswith(PROBLEM_TYPE):
        issues.append(f"Content-Type {r.headers.get('content-type')!r}, not {PROBLEM_TYPE}")
    try:
        doc = r.json()
    except ValueError:
        return [*issues, f"the body is not JSON: {r.text[:120]!r}"]
    if not isinstance(doc, dict):
        return [*issues, f"the body is not a JSON object: {r.text[:120]!r}"]
    for name in ("type", "title", "detail"):
        if not isinstance(doc.get(name), str) or not doc.get(name):
            issues.append(f"no {name} string")
    if doc.get("status") != r.status_code:
        issues.append(f"status member {doc.get('status')!r} is not the response's {r.status_code}")
    rid = r.headers.get("x-request-id")
    if doc.get("request_id") is None or doc.get("request_id") != rid:
        issues.append(f"request_id {doc.get('request_id')!r} is not the response's X-Request-ID {rid!r}")
    return issues


def webhook_id_of(ex: Execution) -> str | None:
    """The webhook id an execute names: in its 200, or in the ``execution`` of its 502."""
    doc = ex.json
    inner = doc.get("execution") if isinstance(doc.get("execution"), dict) else doc
    value = inner.get("webhook_id") if isinstance(inner, dict) else None
    return str(value) if value else None


# -- deliveries ----------------------------------------------------------------------------------------


def watch_for_deliveries(
    receiver: ReceiverClient, after: int, *, since: float, target: Target
) -> list[Capture]:
    """Every capture after ``after``, watched until the service's delivery timeout (plus a margin) has
    passed since ``since`` (time.monotonic()): a delivery that was started has arrived or timed out."""
    deadline = since + target.delivery_timeout_s + NO_DELIVERY_MARGIN_S
    caps = receiver.captures(after)
    while not caps and time.monotonic() < deadline:
        time.sleep(0.05)
        caps = receiver.captures(after)
    return caps


def deliveries_of(receiver: ReceiverClient, after: int, ex: Execution) -> list[Capture]:
    """The captures after ``after`` that carry ``ex``'s X-Request-ID (a delivery names the request that
    caused it), polled until one arrives or :data:`DELIVERY_WAIT_S` passed."""
    rid = ex.response.headers.get("x-request-id")
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while True:
        caps = [c for c in receiver.captures(after) if rid and c.header("X-Request-ID") == rid]
        if caps or time.monotonic() >= deadline:
            return caps
        time.sleep(0.02)


@dataclass
class Refusals:
    """Executes expected to be refused, and the receiver's sequence number before the first of them."""

    after: int
    executions: list[tuple[str, Execution]] = field(default_factory=list)
    last_at: float = field(default_factory=time.monotonic)

    def add(self, label: str, ex: Execution) -> None:
        self.executions.append((label, ex))
        self.last_at = time.monotonic()

    def delivered(self, receiver: ReceiverClient, target: Target) -> list[Capture]:
        """Deliveries any of these executes caused: watched for until a delivery started by the last one
        has arrived or timed out. A delivery names the request that caused it (X-Request-ID); one that
        names none is counted too. Others (another request of the scenario's) are not these executes'."""
        ids = {ex.response.headers.get("x-request-id") for _, ex in self.executions}
        deadline = self.last_at + target.delivery_timeout_s + NO_DELIVERY_MARGIN_S

        def theirs() -> list[Capture]:
            return [c for c in receiver.captures(self.after) if c.header("X-Request-ID") in ids | {None}]

        caps = theirs()
        while not caps and time.monotonic() < deadline:
            time.sleep(0.05)
            caps = theirs()
        return caps


# -- the audit log -------------------------------------------------------------------------------------


def walk_audit(
    http: httpx.Client, admin: Credential, params: Mapping[str, Any], *, pages: int
) -> Iterator[dict[str, Any]]:
    """Each page of ``GET /audit`` with ``params`` (its JSON document, newest first), following
    ``next_cursor`` for up to ``pages`` pages; the caller stops early by leaving the loop. The one
    place the steps page through the audit log."""
    query = dict(params)
    for _ in range(pages):
        r = http.get("/audit", headers=admin.authorization, params=query)
        assert r.status_code == 200, f"GET /audit {query} answered {r.status_code}: {r.text[:300]}"
        doc = r.json()
        yield doc
        if not doc.get("next_cursor"):
            return
        query["cursor"] = doc["next_cursor"]


def audit_rows(
    http: httpx.Client, admin: Credential, *, pages: int = 4, **params: str | int
) -> list[dict[str, Any]]:
    """Rows of ``GET /audit`` with ``params`` (newest first), following cursors for up to ``pages`` pages."""
    return [
        row for doc in walk_audit(http, admin, {"limit": 500, **params}, pages=pages) for row in doc["items"]
    ]


def newest_audit_row(http: httpx.Client, admin: Credential) -> dict[str, Any] | None:
    r = http.get("/audit", headers=admin.authorization, params={"limit": 1})
    assert r.status_code == 200, f"GET /audit?limit=1 answered {r.status_code}: {r.text[:300]}"
    items = r.json()["items"]
    return items[0] if items else None


# -- bodies of a given size ----------------------------------------------------------------------------


def padded(body: bytes, size: int) -> bytes:
    """``body`` (a JSON document) followed by spaces up to exactly ``size`` bytes: still the same JSON."""
    assert len(body) <= size, f"the document alone is {len(body)} bytes, more than {size}"
    return body + b" " * (size - len(body))


def in_chunks(body: bytes, size: int = 8192, *, pause_s: float = 0.0) -> Iterator[bytes]:
    """An iterator, so httpx sends the body with chunked transfer coding and no Content-Length;
    ``pause_s`` between chunks makes the server read them one by one (sent at once, a server may
    read the whole body in one go, and a limit applied to each piece instead of the sum goes unseen)."""
    for i in range(0, len(body), size):
        if i and pause_s:
            time.sleep(pause_s)
        yield body[i : i + size]


# -- metrics -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def metric_samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition (prometheus_client's parser; raises when malformed)."""
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def counter_value(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in metric_samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
