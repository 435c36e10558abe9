"""Steps for features/api.feature, the action requests docs/service.md describes: preview and its
preview_id, execute's answer, the workspace, the destination allowlist, unknown fields, and what a
rate-limited execute leaves behind.

Deliveries are read at the webhook receiver, audit records through ``GET /audit`` with an admin key.
A delivery is matched to its execute by the receiver's sequence numbers (scenarios run one at a time),
never by an id the service reports: a scenario that checks one promise must not fail because another
one is broken. Evidence notes: ``preview``, ``redeemed``, ``refused``, ``allowlist``, ``rate_limited``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pytest_bdd import given, then, when

from features.steps.headers import QUOTA_PROBE
from features.support import skips
from features.support.api_support import (
    Refusals,
    ascii_notify,
    audit_rows,
    counter_value,
    deliveries_of,
    newest_audit_row,
    watch_for_deliveries,
)
from features.support.executes import NOTIFY, Execution, admitted_execute, message
from features.support.recording import ExchangeRecorder
from gate.client.receiver import Capture, ReceiverClient
from gate.client.target import Credential, Target

SHORT_TTL_S = 10
EXPIRY_MARGIN_S = 0.2  # past the TTL counted from the answer: the token was minted before it


def _table(datatable: list[list[str]]) -> list[dict[str, str]]:
    head = [c.strip() for c in datatable[0]]
    return [dict(zip(head, (c.strip() for c in row), strict=True)) for row in datatable[1:]]


def _preview(client: httpx.Client, cred: Credential, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/actions/preview", headers=cred.authorization, json=body)
    assert r.status_code == 200, f"preview answered {r.status_code}: {r.text[:300]}"
    doc = r.json()
    assert isinstance(doc.get("preview_id"), str) and doc["preview_id"], f"no preview_id: {doc}"
    return dict(doc)


def _delivered(ex: Execution, receiver: ReceiverClient, after: int) -> list[Capture]:
    r = ex.response
    assert r.status_code == 200, f"execute answered {r.status_code}: {r.text[:300]}"
    caps = deliveries_of(receiver, after, ex)
    assert caps, f"the receiver got no delivery naming request {r.headers.get('x-request-id')}"
    return caps


# -- a preview, and what execute then delivers ---------------------------------------------------------


@when("the developer previews an action whose message is not ASCII", target_fixture="preview")
def _(http: httpx.Client, dev: Credential, recorder: ExchangeRecorder) -> dict[str, Any]:
    body = {"action": "notify.send", "params": {"channel": "release-gate", "message": message("preview")}}
    doc = _preview(http, dev, body)
    recorder.note(
        "preview", {k: doc.get(k) for k in ("body", "body_sha256", "destination_host", "expires_in_s")}
    )
    return doc


@then("the preview's body_sha256 is the SHA-256 of the body it shows")
def _(preview: dict[str, Any]) -> None:
    body = str(preview.get("body", "")).encode("utf-8")
    assert hashlib.sha256(body).hexdigest() == preview.get("body_sha256"), (
        f"body_sha256 {preview.get('body_sha256')} is not the SHA-256 of the body shown"
    )
    json.loads(body)  # the body shown is the JSON document to be delivered
    assert preview.get("destination_host"), "the preview names no destination host"


@when("the developer executes that preview", target_fixture="executed")
def _(
    http: httpx.Client, dev: Credential, target: Target, receiver: ReceiverClient, preview: dict[str, Any]
) -> tuple[Execution, Capture]:
    after = receiver.last_seq()
    ex = admitted_execute(http, dev, {"preview_id": preview["preview_id"]}, target=target)
    return ex, _delivered(ex, receiver, after)[-1]


@then("the receiver got exactly the bytes the preview showed, at the host the preview named")
def _(executed: tuple[Execution, Capture], preview: dict[str, Any], recorder: ExchangeRecorder) -> None:
    _, cap = executed
    shown = str(preview["body"]).encode("utf-8")
    recorder.note("delivered", {"sha256": hashlib.sha256(cap.body).hexdigest(), "host": cap.header("Host")})
    assert cap.body == shown, f"delivered {cap.body[:200]!r}, the preview showed {shown[:200]!r}"
    assert hashlib.sha256(cap.body).hexdigest() == preview["body_sha256"]
    host = (cap.header("Host") or "").lower()
    assert host == str(preview["destination_host"]).lower(), (
        f"delivered to host {host!r}, the preview named {preview['destination_host']!r}"
    )


@when("the developer previews 3 actions", target_fixture="previewed")
def _(
    http: httpx.Client, dev: Credential, admin: Credential, receiver: ReceiverClient
) -> tuple[int, dict[str, Any] | None, float]:
    newest, after = newest_audit_row(http, admin), receiver.last_seq()
    for i in range(3):
        _preview(http, dev, ascii_notify(f"side effects #{i + 1}"))
    return after, newest, time.monotonic()


@then("the receiver got no delivery from them")
def _(previewed: tuple[int, dict[str, Any] | None, float], receiver: ReceiverClient, target: Target) -> None:
    after, _, at = previewed
    caps = watch_for_deliveries(receiver, after, since=at, target=target)
    assert not caps, f"previews delivered webhooks: {[(c.path, c.header('webhook-id')) for c in caps]}"


@then("previews beyond the workspace's whole quota spend none of its executes")
def _(http: httpx.Client, dev: Credential, target: Target, recorder: ExchangeRecorder) -> None:
    """More previews than the quota allows executes, then one execute, which the quota plan left room
    for: it is admitted unless the previews were counted. ``admitted`` is not used: it waits a 429 out,
    and would hide the very quota previews must not spend."""
    limit = target.rate_limit.limit if target.rate_limit is not None else 10
    for i in range(limit + 1):
        _preview(http, dev, ascii_notify(f"quota preview #{i + 1}"))
    r = http.post("/actions/execute", headers=dev.authorization, json=ascii_notify("quota after previews"))
    recorder.note("preview_quota", {"previews": limit + 1, "execute": r.status_code,
                                    "retry_after": r.headers.get("retry-after")})  # fmt: skip
    assert r.status_code == 200, (
        f"after {limit + 1} previews an execute was refused ({r.status_code}, Retry-After "
        f"{r.headers.get('retry-after')}): previews spent the workspace's execute quota"
    )


@then("the audit log has no record of them")
def _(previewed: tuple[int, dict[str, Any] | None, float], http: httpx.Client, admin: Credential) -> None:
    _, before, _ = previewed
    now = newest_audit_row(http, admin)
    assert now == before or (now is not None and before is not None and now["id"] == before["id"]), (
        f"the audit log's newest record changed while only previews were made: {now}"
    )


# -- redeeming a preview_id ----------------------------------------------------------------------------


@given("the developer has previewed an action", target_fixture="preview")
def _(http: httpx.Client, dev: Credential) -> dict[str, Any]:
    return _preview(http, dev, ascii_notify("redeem"))


@when("the developer executes that preview twice", target_fixture="redeemed")
def _(
    http: httpx.Client, dev: Credential, target: Target, receiver: ReceiverClient, preview: dict[str, Any]
) -> tuple[list[Execution], list[Capture]]:
    after = receiver.last_seq()
    runs = [
        admitted_execute(http, dev, {"preview_id": preview["preview_id"]}, target=target) for _ in range(2)
    ]
    for n, ex in enumerate(runs, 1):
        assert ex.response.status_code == 200, (
            f"execute #{n} of one preview_id answered {ex.response.status_code}: {ex.response.text[:300]}"
        )
    return runs, [_delivered(ex, receiver, after)[-1] for ex in runs]


@then("both executes are delivered with the previewed bytes, each under a webhook id of its own")
def _(
    redeemed: tuple[list[Execution], list[Capture]], preview: dict[str, Any], recorder: ExchangeRecorder
) -> None:
    _, caps = redeemed
    ids = {c.header("webhook-id") for c in caps}
    recorder.note(
        "redeemed",
        [{"webhook_id": c.header("webhook-id"), "sha256": hashlib.sha256(c.body).hexdigest()} for c in caps],
    )
    assert len(ids) == 2, f"two executes of one preview_id were delivered as {len(ids)} webhook id(s): {ids}"
    shown = str(preview["body"]).encode("utf-8")
    assert all(c.body == shown for c in caps), "a delivery is not the previewed bytes"


def _altered(token: str) -> list[tuple[str, str]]:
    """``token`` changed in one character at its start, its middle and (past its last '.') its tail."""

    def change(i: int) -> str:
        return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]

    middle = len(token) // 2
    middle += 1 if token[middle] == "." else 0
    tail = token.rfind(".") + 1 if "." in token else len(token) - 2
    return [
        ("its first character", change(0)),
        ("a middle character", change(middle)),
        ("the first character after its last '.'", change(tail)),
    ]


@when(
    "the developer executes that preview_id altered in one character at 3 places, and one issued to "
    "another workspace",
    target_fixture="refused",
)
def _(
    http: httpx.Client, dev: Credential, target: Target, receiver: ReceiverClient, preview: dict[str, Any]
) -> Refusals:
    other = target.credential("dev", exclude_workspace=dev.workspace)
    assert other is not None  # @needs-second-workspace
    foreign = _preview(http, other, ascii_notify("another workspace"))
    refusals = Refusals(after=receiver.last_seq())
    for where, token in _altered(str(preview["preview_id"])):
        refusals.add(f"altered at {where}", admitted_execute(http, dev, {"preview_id": token}, target=target))
    refusals.add(
        f"issued to workspace {other.workspace}",
        admitted_execute(http, dev, {"preview_id": foreign["preview_id"]}, target=target),
    )
    return refusals


@then("every one of those executes is refused with 422 and nothing is delivered")
@then("the execute is refused with 422 and nothing is delivered")
def _(refused: Refusals, receiver: ReceiverClient, target: Target, recorder: ExchangeRecorder) -> None:
    recorder.note(
        "refused",
        [
            {"execute": label, "status": ex.response.status_code, "body": ex.response.text[:300]}
            for label, ex in refused.executions
        ],
    )
    wrong = [
        f"{label}: {ex.response.status_code} {ex.response.text[:200]}"
        for label, ex in refused.executions
        if ex.response.status_code != 422
    ]
    caps = refused.delivered(receiver, target)
    assert not wrong, "executes not refused with 422:\n" + "\n".join(wrong)
    assert not caps, f"refused executes delivered webhooks: {[c.header('webhook-id') for c in caps]}"


@pytest.fixture
def short_ttl_replica(target: Target) -> Iterator[str]:
    stack = target.stack
    if stack is None or not target.controllable:
        skips.not_applicable(f"{target.name}: needs to start a replica of its own (reference stack only)")
    with stack.extra_replica({"PREVIEW_TTL_S": str(SHORT_TTL_S)}) as url:
        yield url


@given("a replica whose PREVIEW_TTL_S is 10 seconds")
def _(short_ttl_replica: str) -> None:
    pass


@when("the developer previews an action on that replica", target_fixture="short_lived")
def _(
    short_ttl_replica: str, dev: Credential, recorder: ExchangeRecorder, target: Target
) -> tuple[dict[str, Any], float]:
    with recorder.client(short_ttl_replica, timeout=target.request_timeout_s) as c:
        doc = _preview(c, dev, ascii_notify("expiry"))
    return doc, time.monotonic()


@then("the preview says it expires in 10 seconds")
def _(short_lived: tuple[dict[str, Any], float]) -> None:
    doc, _ = short_lived
    assert doc.get("expires_in_s") == SHORT_TTL_S, f"expires_in_s is {doc.get('expires_in_s')!r}"


@when("the developer executes that preview once it has expired", target_fixture="refused")
def _(
    short_ttl_replica: str,
    short_lived: tuple[dict[str, Any], float],
    dev: Credential,
    target: Target,
    receiver: ReceiverClient,
    recorder: ExchangeRecorder,
) -> Refusals:
    doc, at = short_lived
    time.sleep(max(0.0, at + SHORT_TTL_S + EXPIRY_MARGIN_S - time.monotonic()))
    refusals = Refusals(after=receiver.last_seq())
    with recorder.client(short_ttl_replica, timeout=target.request_timeout_s) as c:
        refusals.add("expired", admitted_execute(c, dev, {"preview_id": doc["preview_id"]}, target=target))
    return refusals


@when("the developer previews an action on one replica and executes it on another", target_fixture="crossed")
def _(
    target: Target, dev: Credential, receiver: ReceiverClient, recorder: ExchangeRecorder
) -> tuple[dict[str, Any], Capture]:
    if len(target.replicas) < 2:
        skips.not_applicable(
            f"{target.name}: one base URL, so no replica can be chosen (list each replica's own URL in "
            "[target] replica_urls to check this)"
        )
    first, second = target.replicas[:2]
    with recorder.client(first, timeout=target.request_timeout_s) as c:
        doc = _preview(c, dev, ascii_notify("replicas"))
    after = receiver.last_seq()
    with recorder.client(second, timeout=target.request_timeout_s) as c:
        ex = admitted_execute(c, dev, {"preview_id": doc["preview_id"]}, target=target)
    return doc, _delivered(ex, receiver, after)[-1]


@then("the execute is delivered with the previewed bytes")
def _(crossed: tuple[dict[str, Any], Capture]) -> None:
    doc, cap = crossed
    assert cap.body == str(doc["body"]).encode("utf-8"), "the delivery is not the previewed bytes"


# -- execute's answer ----------------------------------------------------------------------------------


@when("the developer executes a full action request", target_fixture="executed")
def _(
    http: httpx.Client, dev: Credential, target: Target, receiver: ReceiverClient
) -> tuple[Execution, Capture]:
    body = {
        "action": "ticket.create",
        "params": {"title": f"relay-gate {uuid.uuid4().hex[:8]}", "priority": "low", "labels": ["gate"]},
    }
    after = receiver.last_seq()
    ex = admitted_execute(http, dev, body, target=target)
    return ex, _delivered(ex, receiver, after)[-1]


@then("the execute answers 200 with request_id, webhook_id, delivery status delivered and latency_ms")
def _(executed: tuple[Execution, Capture], recorder: ExchangeRecorder) -> None:
    ex, _ = executed
    doc = ex.json
    recorder.note("execute_answer", doc)
    uuid.UUID(str(doc.get("request_id")))
    assert isinstance(doc.get("webhook_id"), str) and doc["webhook_id"], f"no webhook_id: {doc}"
    assert doc.get("delivery", {}).get("status") == "delivered", f"delivery: {doc.get('delivery')}"
    latency = doc.get("latency_ms")
    assert isinstance(latency, int | float) and not isinstance(latency, bool) and latency >= 0, (
        f"latency_ms is {latency!r}"
    )


@then("its request_id is the response's X-Request-ID and its webhook_id the delivery's webhook-id")
def _(executed: tuple[Execution, Capture]) -> None:
    ex, cap = executed
    assert ex.json.get("request_id") == ex.response.headers.get("x-request-id"), (
        f"request_id {ex.json.get('request_id')} is not the response's X-Request-ID"
    )
    assert ex.json.get("webhook_id") == cap.header("webhook-id"), (
        f"the execute names webhook {ex.json.get('webhook_id')}, the delivery {cap.header('webhook-id')}"
    )


@then("the audit log holds exactly one record of it, with that webhook id")
def _(executed: tuple[Execution, Capture], http: httpx.Client, admin: Credential, dev: Credential) -> None:
    ex, cap = executed
    rid = ex.response.headers.get("x-request-id")
    rows = [r for r in audit_rows(http, admin, pages=1, workspace=dev.workspace) if r["request_id"] == rid]
    assert len(rows) == 1, f"{len(rows)} audit records of request {rid}"
    assert rows[0]["webhook_id"] == cap.header("webhook-id"), (
        f"the record names webhook {rows[0]['webhook_id']}, the delivery carried {cap.header('webhook-id')}"
    )


# -- the workspace ---------------------------------------------------------------------------------------


def _another_workspace(target: Target, mine: str) -> str:
    for c in target.credentials.values():
        if c.workspace != mine:
            return c.workspace
    return "default" if mine != "default" else "relay-gate-other"


@when(
    "the developer previews and executes an action naming another workspace in an X-Workspace-ID header "
    "and a workspace query parameter",
    target_fixture="claimed",
)
def _(
    http: httpx.Client, dev: Credential, target: Target, receiver: ReceiverClient, recorder: ExchangeRecorder
) -> dict[str, Any]:
    other = _another_workspace(target, dev.workspace)
    claim = {"headers": {"X-Workspace-ID": other}, "params": {"workspace": other}}
    body = ascii_notify("workspace claim")
    p = http.post(
        "/actions/preview",
        headers={**dev.authorization, **claim["headers"]},
        params=claim["params"],
        json=body,
    )
    after = receiver.last_seq()
    ex = admitted_execute(http, dev, body, target=target, **claim)  # type: ignore[arg-type]
    caps = _delivered(ex, receiver, after)
    recorder.note("workspace_claim", {"key_workspace": dev.workspace, "claimed": other})
    return {"other": other, "preview": p, "execute": ex, "delivered": json.loads(caps[-1].body)}


@then("the preview, the execute and the delivered body all name the key's workspace")
def _(claimed: dict[str, Any], dev: Credential) -> None:
    p: httpx.Response = claimed["preview"]
    assert p.status_code == 200, f"preview answered {p.status_code}: {p.text[:300]}"
    named = {
        "preview": p.json().get("workspace"),
        "execute": claimed["execute"].json.get("workspace"),
        "delivered body": claimed["delivered"].get("workspace"),
    }
    wrong = {k: v for k, v in named.items() if v != dev.workspace}
    assert not wrong, (
        f"the key's workspace is {dev.workspace}; the client claimed {claimed['other']}: {wrong}"
    )


@then("an action request naming a workspace in its body does not run for that workspace")
def _(http: httpx.Client, dev: Credential, claimed: dict[str, Any]) -> None:
    r = http.post(
        "/actions/preview",
        headers=dev.authorization,
        json=ascii_notify("workspace field", workspace=claimed["other"]),
    )
    assert r.status_code == 422 or (r.status_code == 200 and r.json().get("workspace") == dev.workspace), (
        f"a body naming workspace {claimed['other']} was answered {r.status_code}: {r.text[:300]}"
    )


# -- destinations --------------------------------------------------------------------------------------


@given("the receiver's host and port, where the service delivers by default", target_fixture="allowed")
def _(target: Target) -> dict[str, str]:
    assert target.receiver_url is not None  # @needs-receiver
    parts = urlsplit(target.receiver_url)
    host = (parts.hostname or "").lower()
    port = parts.port
    return {
        "allowed": parts.netloc.lower().rpartition("@")[2],
        "host": f"[{host}]" if ":" in host else host,
        "other_port": str(port + 1 if port and port < 65535 else 1),
        "tab": "\t",
        "cr": "\r",
        "lf": "\n",
        "nul": "\x00",
    }


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


@when("the developer previews an action for each of these destinations", target_fixture="destinations")
def _(
    http: httpx.Client, dev: Credential, allowed: dict[str, str], datatable: list[list[str]]
) -> list[tuple[str, str, httpx.Response]]:
    out = []
    for row in _table(datatable):
        url = _fill(row["destination"], allowed)
        r = http.post(
            "/actions/preview", headers=dev.authorization, json=ascii_notify("allowlist", destination=url)
        )
        out.append((url, row["status"], r))
    return out


@then("each preview is answered with the status listed")
def _(destinations: list[tuple[str, str, httpx.Response]], recorder: ExchangeRecorder) -> None:
    recorder.note(
        "allowlist", [{"destination": u, "expected": s, "status": r.status_code} for u, s, r in destinations]
    )
    wrong = [f"{u!r}: {r.status_code}, expected {s}" for u, s, r in destinations if r.status_code != int(s)]
    assert not wrong, "destinations not judged as documented:\n" + "\n".join(wrong)


@when("the developer executes an action for a destination with userinfo", target_fixture="refused")
def _(
    http: httpx.Client, dev: Credential, target: Target, receiver: ReceiverClient, allowed: dict[str, str]
) -> Refusals:
    refusals = Refusals(after=receiver.last_seq())
    body = ascii_notify("userinfo", destination=f"http://user:secret@{allowed['allowed']}/relay-gate")
    refusals.add("destination with userinfo", admitted_execute(http, dev, body, target=target))
    return refusals


# -- unknown fields --------------------------------------------------------------------------------------


@when("the developer previews these action requests", target_fixture="unknown_fields")
def _(http: httpx.Client, dev: Credential, datatable: list[list[str]]) -> list[tuple[str, httpx.Response]]:
    out = []
    for row in _table(datatable):
        json.loads(row["request"])  # the table holds JSON documents
        out.append(
            (
                row["request"],
                http.post(
                    "/actions/preview",
                    content=row["request"].encode(),
                    headers={**dev.authorization, "Content-Type": "application/json"},
                ),
            )
        )
    return out


@then("every one is refused with 422")
def _(unknown_fields: list[tuple[str, httpx.Response]]) -> None:
    wrong = [f"{body}: {r.status_code}" for body, r in unknown_fields if r.status_code != 422]
    assert not wrong, "requests with fields the document does not name were accepted:\n" + "\n".join(wrong)


@when("the developer executes a valid preview_id with one more field", target_fixture="extra_field")
def _(http: httpx.Client, dev: Credential, target: Target) -> Execution:
    doc = _preview(http, dev, ascii_notify("preview_id with one more field"))
    return admitted_execute(
        http, dev, {"preview_id": doc["preview_id"], "note": "one more field"}, target=target
    )


@then("that execute is refused with 422")
def _(extra_field: Execution) -> None:
    r = extra_field.response
    assert r.status_code == 422, f"execute with an unknown field answered {r.status_code}: {r.text[:300]}"


# -- a rate-limited execute ------------------------------------------------------------------------------


def _breaches(http: httpx.Client, workspace: str) -> float:
    r = http.get("/metrics")
    assert r.status_code == 200, f"GET /metrics answered {r.status_code}"
    return counter_value(r.text, "rate_limit_breaches_total", workspace=workspace)


@given(
    "the workspace's rate_limit_breaches_total and the receiver's deliveries so far",
    target_fixture="before_limit",
)
def _(http: httpx.Client, dev: Credential, receiver: ReceiverClient, target: Target) -> dict[str, float]:
    if not target.rate_limit_enabled:
        skips.not_applicable(f"{target.name}: rate limiting is disabled, so there is no 429 to check")
    return {"breaches": _breaches(http, dev.workspace), "after": receiver.last_seq()}


@when("the workspace executes until an action is refused with 429", target_fixture="limited")
def _(http: httpx.Client, dev: Credential, target: Target, recorder: ExchangeRecorder) -> dict[str, Any]:
    assert target.rate_limit is not None  # @needs-rate-limit-policy
    admitted_ex: list[httpx.Response] = []
    refused: list[httpx.Response] = []
    statuses: list[int] = []
    validates_first = False  # the target refuses a probe before counting it: only real executes spend
    body: dict[str, Any] = QUOTA_PROBE
    # probes (an unknown preview_id: counted, then refused 422, no side effect) use the quota up; then a real
    # action must be refused. A window that rolls over meanwhile admits it: then again, a few times at most.
    for _ in range(3 * (2 * target.rate_limit.limit + 2)):
        r = http.post("/actions/execute", headers=dev.authorization, json=body)
        statuses.append(r.status_code)
        if body is QUOTA_PROBE and r.status_code != 429 and "x-ratelimit-remaining" not in r.headers:
            validates_first, body = True, NOTIFY
            continue
        if r.status_code == 429 and body is QUOTA_PROBE:
            body = NOTIFY
        elif r.status_code == 429:
            refused.append(r)
            break
        elif body is NOTIFY:
            admitted_ex.append(r)
            body = NOTIFY if validates_first else QUOTA_PROBE
    recorder.note(
        "rate_limited", {"statuses": statuses, "refused": [r.headers.get("x-request-id") for r in refused]}
    )
    assert refused, f"no action was refused with 429 after {len(statuses)} executes: {statuses}"
    return {
        "admitted": admitted_ex,
        "refused": refused,
        "at": time.monotonic(),
        "refusals_429": sum(s == 429 for s in statuses),
    }


@then("no refused execute is in the audit log")
def _(limited: dict[str, Any], http: httpx.Client, admin: Credential, dev: Credential) -> None:
    refused_ids = {r.headers.get("x-request-id") for r in limited["refused"]}
    rows = audit_rows(http, admin, pages=1, workspace=dev.workspace)
    found = [r for r in rows if r["request_id"] in refused_ids]
    assert not found, f"rate-limited executes were audited: {found[:3]}"


@then("the receiver got no delivery from a refused execute")
def _(
    limited: dict[str, Any], before_limit: dict[str, float], receiver: ReceiverClient, target: Target
) -> None:
    refusals = Refusals(after=int(before_limit["after"]), last_at=limited["at"])
    refusals.executions = [("rate limited", Execution(r, 0.0)) for r in limited["refused"]]
    caps = refusals.delivered(receiver, target)
    assert not caps, f"rate-limited executes delivered webhooks: {[c.header('webhook-id') for c in caps]}"


@then("rate_limit_breaches_total for the workspace rose by the number of refusals")
def _(limited: dict[str, Any], before_limit: dict[str, float], http: httpx.Client, dev: Credential) -> None:
    rose = _breaches(http, dev.workspace) - before_limit["breaches"]
    assert rose == limited["refusals_429"], (
        f"rate_limit_breaches_total{{workspace={dev.workspace!r}}} rose by {rose:g}; "
        f"{limited['refusals_429']} executes were refused with 429"
    )
