"""Steps for features/audit.feature: API-key authentication, the admin-only audit log, audit-before-send.

Everything is observed over HTTP (the target's responses, ``GET /audit`` as an admin) and at the
webhook receiver; the only control used is stopping and restarting the stack's PostgreSQL
(``@needs-control``), which is always restarted — and every replica seen ready again — in cleanup.
Notes for the evidence: ``auth_refusals`` (401/403 with their headers) and ``audit_rows_matched``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from features.support.api_support import walk_audit
from features.support.executes import (
    NOTIFY,
    Delivery,
    Execution,
    admitted_execute,
    captured_attempts,
    deliver,
    message,
    notify,
)
from features.support.recording import ExchangeRecorder
from gate.client.receiver import ReceiverClient
from gate.client.target import Credential, Target
from gate.oracles import headercheck, ratelimit

READY_TIMEOUT_S = 30.0
# beyond the service's delivery timeout, how long a refused execute's receiver is watched: a delivery
# that was started must either arrive or have timed out by then
NO_DELIVERY_MARGIN_S = 0.5


def _call(http: httpx.Client, endpoint: str, headers: dict[str, str]) -> httpx.Response:
    method, _, path = endpoint.partition(" ")
    if method == "GET":
        return http.get(path, headers=headers)
    if method == "POST":
        return http.post(path, headers=headers, json=NOTIFY)
    raise AssertionError(f"unknown endpoint {endpoint!r}: write it as 'GET /path' or 'POST /path'")


def _header_evidence(r: httpx.Response) -> list[list[str]]:
    return [[k, v] for k, v in r.headers.multi_items()]


def _security_header_problems(r: httpx.Response, expected: dict[str, str] | None) -> list[str]:
    """Each expected header exactly once with its value, judged as the @headers scenarios judge it."""
    assert expected is not None, "the target's header profile gives no expected values"
    return [p.describe() for p in headercheck.check_headers(r.headers, expected, forbidden=())]


# -- 401 ------------------------------------------------------------------------------------------


def _refusals(
    http: httpx.Client,
    datatable: list[list[str]],
    headers: dict[str, str],
    credential: str,
    recorder: ExchangeRecorder,
) -> list[tuple[str, httpx.Response]]:
    out = [(row[0].strip(), _call(http, row[0].strip(), headers)) for row in datatable[1:]]
    recorder.note(
        "auth_refusals",
        [
            {
                "endpoint": e,
                "credential": credential,
                "status": r.status_code,
                "headers": _header_evidence(r),
                "body": r.text[:500],
            }
            for e, r in out
        ],
    )
    return out


@when("a client calls these endpoints without an API key", target_fixture="refusals")
def _(
    http: httpx.Client, datatable: list[list[str]], recorder: ExchangeRecorder
) -> list[tuple[str, httpx.Response]]:
    return _refusals(http, datatable, {}, "no Authorization header", recorder)


@when("a client calls these endpoints with an unknown API key", target_fixture="refusals")
def _(
    http: httpx.Client, datatable: list[list[str]], recorder: ExchangeRecorder
) -> list[tuple[str, httpx.Response]]:
    unknown = secrets.token_urlsafe(24)  # well-formed, never configured anywhere
    return _refusals(
        http, datatable, {"Authorization": f"Bearer {unknown}"}, "a well-formed unknown key", recorder
    )


@then("every call is refused with 401 and a Bearer challenge")
def _(refusals: list[tuple[str, httpx.Response]]) -> None:
    wrong = []
    for endpoint, r in refusals:
        challenge = r.headers.get("www-authenticate", "")
        if r.status_code != 401 or not challenge.lower().startswith("bearer"):
            wrong.append(f"{endpoint}: {r.status_code}, WWW-Authenticate {challenge!r}")
        elif not r.headers.get("content-type", "").startswith("application/problem+json"):
            wrong.append(f"{endpoint}: 401 but not a problem+json body ({r.headers.get('content-type')})")
    assert not wrong, "calls not refused with 401 + Bearer challenge:\n" + "\n".join(wrong)


@then("every refusal carries the expected security headers")
def _(refusals: list[tuple[str, httpx.Response]], target: Target) -> None:
    wrong = [f"{e}: {p}" for e, r in refusals for p in _security_header_problems(r, target.expected())]
    assert not wrong, "refusals without the expected security headers:\n" + "\n".join(wrong)


# -- 403 ------------------------------------------------------------------------------------------


_DEV_AUDIT_QUERIES = {
    "none": lambda dev: {},
    "workspace=its own workspace": lambda dev: {"workspace": dev.workspace},
    "status=ok": lambda dev: {"status": "ok"},
    "limit=1": lambda dev: {"limit": 1},
}


@when("the developer reads the audit log with these queries", target_fixture="audit_refusals")
def _(
    http: httpx.Client, dev: Credential, recorder: ExchangeRecorder, datatable: list[list[str]]
) -> list[tuple[str, httpx.Response]]:
    # an admin-only listing is refused however the request is narrowed: a filter to the key's own
    # workspace is no licence to read it
    out = []
    for row in datatable[1:]:
        query = row[0].strip()
        assert query in _DEV_AUDIT_QUERIES, f"unknown query {query!r}: one of {sorted(_DEV_AUDIT_QUERIES)}"
        params = _DEV_AUDIT_QUERIES[query](dev)
        out.append((query, http.get("/audit", params=params, headers=dev.authorization)))
    recorder.note(
        "auth_refusals",
        [
            {
                "endpoint": f"GET /audit ({query})",
                "credential": f"{dev.role} key of {dev.workspace}",
                "status": r.status_code,
                "headers": _header_evidence(r),
                "body": r.text[:500],
            }
            for query, r in out
        ],
    )
    return out


@then("every audit read is refused with 403 and lists no records")
def _(audit_refusals: list[tuple[str, httpx.Response]]) -> None:
    wrong = []
    for query, r in audit_refusals:
        ctype = r.headers.get("content-type", "")
        if r.status_code != 403:
            wrong.append(f"{query}: {r.status_code} {r.text[:200]}")
        elif not ctype.startswith("application/problem+json"):
            wrong.append(f"{query}: 403 as {ctype!r}, not a problem document")
        elif "items" in r.json():
            wrong.append(f"{query}: the 403 body carries audit records")
    assert not wrong, "a dev key reading /audit was not refused as documented:\n" + "\n".join(wrong)


@then("every audit refusal carries the expected security headers")
def _(audit_refusals: list[tuple[str, httpx.Response]], target: Target) -> None:
    wrong = [f"{q}: {p}" for q, r in audit_refusals for p in _security_header_problems(r, target.expected())]
    assert not wrong, "403s without the expected security headers:\n" + "\n".join(wrong)


# -- the audit trail of executes ------------------------------------------------------------------


def read_audit(
    http: httpx.Client, admin: Credential, wanted: set[str], *, status: str, pages: int = 10
) -> list[dict[str, Any]]:
    """Rows of ``GET /audit?status=...`` (newest first, following cursors) until ``wanted`` are seen."""
    rows: list[dict[str, Any]] = []
    for doc in walk_audit(http, admin, {"status": status, "limit": 500}, pages=pages):
        rows += doc["items"]
        if wanted <= {row["request_id"] for row in rows}:
            break
    return rows


def _row_evidence(row: dict[str, Any] | None, d_rid: str, capture: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "request_id",
        "webhook_id",
        "workspace",
        "action",
        "role",
        "status",
        "delivery_status",
        "http_status",
        "attempts",
        "created_at",
        "completed_at",
    )
    return {
        "execute_request_id": d_rid,
        "receiver": capture,
        "audit_row": {k: row.get(k) for k in keep} if row else None,
    }


@given(
    parsers.parse("the developer has executed {count:d} actions that reached the receiver"),
    target_fixture="audited",
)
def _(
    http: httpx.Client, dev: Credential, receiver: ReceiverClient, target: Target, count: int
) -> list[Delivery]:
    return [
        deliver(http, dev, receiver, target, message=message(f"audit #{i + 1}"), previewed=False)
        for i in range(count)
    ]


@when("an admin reads the audit log filtered by status ok", target_fixture="audit_rows")
def _(http: httpx.Client, admin: Credential, audited: list[Delivery]) -> list[dict[str, Any]]:
    return read_audit(http, admin, {d.execution.json["request_id"] for d in audited}, status="ok")


@then("every audit row listed has status ok")
def _(audit_rows: list[dict[str, Any]]) -> None:
    other = [(r["request_id"], r["status"]) for r in audit_rows if r.get("status") != "ok"]
    assert audit_rows, "GET /audit?status=ok listed nothing"
    assert not other, f"GET /audit?status=ok lists rows of another status: {other[:5]}"


@then("each execute is listed with the request id and webhook id its delivery carried")
def _(
    audit_rows: list[dict[str, Any]], audited: list[Delivery], dev: Credential, recorder: ExchangeRecorder
) -> None:
    by_rid = {r["request_id"]: r for r in audit_rows}
    matched, wrong = [], []
    for d in audited:
        rid = d.execution.json["request_id"]
        seen = {
            "x_request_id": d.header("X-Request-ID"),
            "webhook_id": d.header("webhook-id"),
            "seq": d.capture.seq,
        }
        row = by_rid.get(rid)
        matched.append(_row_evidence(row, rid, seen))
        if row is None:
            wrong.append(f"{rid}: not in GET /audit?status=ok")
            continue
        expect = {
            "request_id": seen["x_request_id"],
            "webhook_id": seen["webhook_id"],
            "workspace": dev.workspace,
            "action": d.execution.body.get("action"),
            "delivery_status": "delivered",
            "attempts": len(d.attempts),
        }
        diff = {k: (row.get(k), v) for k, v in expect.items() if row.get(k) != v}
        if diff:
            wrong.append(f"{rid}: audit row vs delivery (row, expected): {diff}")
    recorder.note("audit_rows_matched", matched)
    assert not wrong, "executes missing or wrong in the audit log:\n" + "\n".join(wrong)


# -- a failed delivery ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempted:
    """An execute and the receiver's sequence number just before it."""

    execution: Execution
    after: int


@given(parsers.parse("the receiver answers every delivery with {status:d}"), target_fixture="refused_with")
def _(receiver: ReceiverClient, status: int, request: pytest.FixtureRequest) -> int:
    receiver.script(default_status=status)  # every attempt, however many the target makes
    request.addfinalizer(receiver.script)  # back to answering 200
    return status


@when("the developer executes an action the receiver refuses", target_fixture="attempted")
def _(http: httpx.Client, dev: Credential, receiver: ReceiverClient, target: Target) -> Attempted:
    after = receiver.last_seq()
    return Attempted(admitted_execute(http, dev, notify(message("refused delivery")), target=target), after)


def _execution_of(problem: dict[str, Any]) -> dict[str, Any]:
    execution = problem.get("execution")
    return execution if isinstance(execution, dict) else {}


@then("the execute is answered 502 naming the failed delivery")
def _(attempted: Attempted, recorder: ExchangeRecorder, refused_with: int) -> None:
    r = attempted.execution.response
    assert r.status_code == 502, (
        f"execute with the receiver answering {refused_with} got {r.status_code}: {r.text[:300]}"
    )
    execution = _execution_of(attempted.execution.json)
    recorder.note("failed_delivery", {"status": r.status_code, "problem": attempted.execution.json})
    assert execution.get("request_id") and execution.get("webhook_id"), (
        f"the 502 names no execution: {r.text[:300]}"
    )
    assert execution.get("delivery", {}).get("status") == "failed", execution


@then("the receiver saw every attempt the execute reported")
def _(attempted: Attempted, receiver: ReceiverClient) -> None:
    execution = _execution_of(attempted.execution.json)
    reported = int(execution.get("delivery", {}).get("attempts") or 0)
    caps = captured_attempts(receiver, str(execution.get("webhook_id")), after=attempted.after)
    assert reported >= 1 and len(caps) == reported, (
        f"execute reported {reported} attempts, the receiver saw {len(caps)}"
    )


@then("the 502 carries the rate-limit headers every execute carries")
def _(attempted: Attempted, target: Target, recorder: ExchangeRecorder) -> None:
    # docs/service.md: the X-RateLimit fields go with every admitted execute, and a failed delivery
    # was admitted (it spent quota): the client still needs to know what is left
    r = attempted.execution.response
    rl = ratelimit.parse(r.headers, now=time.time())
    fields = {
        "X-RateLimit-Limit": rl.limit,
        "X-RateLimit-Remaining": rl.remaining,
        "X-RateLimit-Reset": rl.reset,
    }
    recorder.note("failed_delivery_rate_limit_headers", {name: f.describe() for name, f in fields.items()})
    if not target.rate_limit_enabled:
        return  # a target without rate limiting sends none, on any execute
    wrong = [f"{name}: {f.describe()}" for name, f in fields.items() if not f.ok]
    assert not wrong, f"the 502 of an admitted execute lacks its rate-limit headers: {wrong}"


@then("an admin finds that execute in the audit log with status error")
def _(http: httpx.Client, admin: Credential, attempted: Attempted, recorder: ExchangeRecorder) -> None:
    execution = _execution_of(attempted.execution.json)
    rid = str(execution.get("request_id"))
    rows = {r["request_id"]: r for r in read_audit(http, admin, {rid}, status="error")}
    row = rows.get(rid)
    recorder.note(
        "audit_rows_matched", [_row_evidence(row, rid, {"webhook_id": execution.get("webhook_id")})]
    )
    assert row is not None, (
        f"the failed execute {rid} is not in GET /audit?status=error: failed deliveries go unaudited"
    )
    expect = {
        "webhook_id": execution.get("webhook_id"),
        "delivery_status": "failed",
        "attempts": execution["delivery"]["attempts"],
        "http_status": execution["delivery"]["http_status"],
    }
    diff = {k: (row.get(k), v) for k, v in expect.items() if row.get(k) != v}
    assert not diff, f"the audit row disagrees with the 502 (row, 502): {diff}"


# -- the audit database down ----------------------------------------------------------------------


def _wait_ready(
    recorder: ExchangeRecorder, target: Target, *, want: int, urls: list[str], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    last: dict[str, str] = {}
    while pending:
        for url in list(pending):
            with recorder.client(url, timeout=5.0) as c:
                try:
                    r = c.get("/_stcore/ready")
                    last[url] = f"{r.status_code} {r.text[:200]}"
                    if r.status_code == want:
                        pending.remove(url)
                except httpx.HTTPError as exc:
                    last[url] = type(exc).__name__
        if pending and time.monotonic() >= deadline:
            raise AssertionError(
                f"/_stcore/ready did not answer {want} within {timeout_s:g} s on "
                + ", ".join(f"{u} (last: {last.get(u)})" for u in pending)
            )
        if pending:
            time.sleep(0.1)


@pytest.fixture
def audit_database_stopped(target: Target, recorder: ExchangeRecorder) -> Iterator[None]:
    """PostgreSQL stopped for the scenario; always restarted, and every replica ready again, after."""
    stack = target.stack
    assert stack is not None, "needs the reference stack (@needs-control)"
    try:
        stack.stop_postgres()
        yield
    finally:
        stack.start_postgres()
        _wait_ready(recorder, target, want=200, urls=target.base_urls, timeout_s=READY_TIMEOUT_S)


@given("the audit database is stopped")
def _(audit_database_stopped: None, target: Target) -> None:
    # stop_postgres() returns once the server has shut down; the execute's own 503 then shows the
    # relay sees it (polling /_stcore/ready for 503 would cost a whole DB_TIMEOUT_S per probe)
    assert target.stack is not None and target.stack.postgres is not None
    assert not target.stack.postgres.running, "PostgreSQL still runs after stop_postgres()"


@when("the developer executes an action while the audit database is down", target_fixture="attempted")
def _(http: httpx.Client, dev: Credential, receiver: ReceiverClient, target: Target) -> Attempted:
    after = receiver.last_seq()
    return Attempted(
        admitted_execute(http, dev, notify(message("audit database down")), target=target), after
    )


@then("the execute is answered 503 with Retry-After")
def _(attempted: Attempted, recorder: ExchangeRecorder) -> None:
    r = attempted.execution.response
    recorder.note(
        "audit_down_execute", {"status": r.status_code, "headers": _header_evidence(r), "body": r.text[:500]}
    )
    assert r.status_code == 503, f"execute with the audit database down got {r.status_code}: {r.text[:300]}"
    retry_after = r.headers.get("retry-after", "")
    assert retry_after.isdigit() and int(retry_after) >= 1, (
        f"503 without a usable Retry-After: {retry_after!r}"
    )


@then("the receiver got no delivery from it")
def _(attempted: Attempted, receiver: ReceiverClient, recorder: ExchangeRecorder, target: Target) -> None:
    watch_s = target.delivery_timeout_s + NO_DELIVERY_MARGIN_S
    deadline = time.monotonic() + watch_s
    caps = receiver.captures(attempted.after)
    while not caps and time.monotonic() < deadline:
        time.sleep(0.05)
        caps = receiver.captures(attempted.after)
    recorder.note(
        "audit_down_deliveries", [{"seq": c.seq, "webhook_id": c.header("webhook-id")} for c in caps]
    )
    recorder.note("audit_down_watched_s", watch_s)
    assert not caps, f"a webhook went out without its audit record: {[c.header('webhook-id') for c in caps]}"


@then("every replica still lists and previews actions")
def _(target: Target, dev: Credential, recorder: ExchangeRecorder) -> None:
    wrong = []
    for url in target.base_urls:
        with recorder.client(url, timeout=target.request_timeout_s) as c:
            listed = c.get("/actions", headers=dev.authorization)
            previewed = c.post("/actions/preview", headers=dev.authorization, json=NOTIFY)
        if listed.status_code != 200 or previewed.status_code != 200:
            wrong.append(
                f"{url}: GET /actions {listed.status_code}, POST /actions/preview {previewed.status_code}"
            )
    assert not wrong, "with the audit database down, reads fail too:\n" + "\n".join(wrong)
