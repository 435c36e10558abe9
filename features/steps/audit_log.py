"""Steps for features/audit.feature beyond the refusals and the trail of executes (features/steps/audit.py):
which forms of a key authenticate, how ``GET /audit`` lists (newest first, by cursor, limit 1-500), what
each of its filters keeps, and that an execute's record is on file before its webhook leaves.

Records are matched to executes by webhook id (the id the delivery carried, or the execute answered):
the request-id trail is a scenario of its own. Times are the service's: the filters are set around a
record's own ``created_at``, so the client's clock never matters. Evidence notes: ``key_forms``,
``audit_pages``, ``audit_limits``, ``audit_filters``, ``audit_times``, ``pending_record``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pytest_bdd import given, then, when

from features.support import skips
from features.support.api_support import ascii_notify, audit_rows, problem_issues, walk_audit, webhook_id_of
from features.support.executes import Delivery, Execution, admitted_execute
from features.support.recording import ExchangeRecorder
from gate.client.receiver import ReceiverClient
from gate.client.target import Credential, Target

MAX_HOLD_S = 1.5  # how long the receiver holds a delivery: well inside the service's delivery timeout


def _table(datatable: list[list[str]]) -> list[dict[str, str]]:
    head = [c.strip() for c in datatable[0]]
    return [dict(zip(head, (c.strip() for c in row), strict=True)) for row in datatable[1:]]


# -- which forms of a key authenticate -------------------------------------------------------------------


def _other(c: str) -> str:
    return "B" if c == "A" else "A"


def _forms(key: str) -> dict[str, str]:
    return {
        "{key, its last character changed}": key[:-1] + _other(key[-1]),
        "{key, without its last character}": key[:-1],
        "{key, one character longer}": key + "A",
        "{key, its letters in the other case}": key.swapcase(),
        "{key}": key,
    }


@when(
    "the developer's key is sent in these forms to GET /actions and POST /actions/preview",
    target_fixture="key_forms",
)
def _(
    http: httpx.Client, dev: Credential, datatable: list[list[str]], recorder: ExchangeRecorder
) -> list[tuple[str, str, str, httpx.Response]]:
    out = []
    for row in _table(datatable):
        value = row["Authorization"]
        for placeholder, replacement in _forms(dev.key).items():
            value = value.replace(placeholder, replacement)
        if "other case" in row["Authorization"] and dev.key.swapcase() == dev.key:
            continue  # a key without letters has no other case
        headers = {"Authorization": value}
        out.append(
            (row["Authorization"], row["status"], "GET /actions", http.get("/actions", headers=headers))
        )
        out.append(
            (
                row["Authorization"],
                row["status"],
                "POST /actions/preview",
                http.post("/actions/preview", headers=headers, json=ascii_notify("key forms")),
            )
        )
    recorder.note(
        "key_forms",
        [{"form": f, "endpoint": e, "expected": s, "status": r.status_code} for f, s, e, r in out],
    )
    return out


@then("each form is answered with the status listed")
def _(key_forms: list[tuple[str, str, str, httpx.Response]]) -> None:
    wrong = [
        f"{e} with Authorization: {f}: {r.status_code}, expected {s}"
        for f, s, e, r in key_forms
        if r.status_code != int(s)
    ]
    wrong += [
        f"{e} with Authorization: {f}: {'; '.join(problem_issues(r))}"
        for f, s, e, r in key_forms
        if r.status_code == 401 and problem_issues(r)
    ]
    assert not wrong, "keys not judged exactly:\n" + "\n".join(wrong)


# -- the listing: order, cursor, limit -------------------------------------------------------------------


@when("an admin pages through the workspace's audit records one at a time", target_fixture="audit_pages")
def _(
    http: httpx.Client,
    admin: Credential,
    dev: Credential,
    audited: list[Delivery],
    recorder: ExchangeRecorder,
) -> list[list[dict[str, Any]]]:
    params = {"workspace": dev.workspace, "limit": 1}
    pages = [doc["items"] for doc in walk_audit(http, admin, params, pages=len(audited) + 2)]
    recorder.note("audit_pages", [[(i["id"], i["webhook_id"], i["created_at"]) for i in p] for p in pages])
    return pages


@then("the 3 executes come first, newest first, one per page")
def _(audit_pages: list[list[dict[str, Any]]], audited: list[Delivery]) -> None:
    newest_first = [d.header("webhook-id") for d in reversed(audited)]
    sizes = [len(p) for p in audit_pages[: len(audited)]]
    assert sizes == [1] * len(audited), f"pages of limit=1 held {sizes} records"
    listed = [p[0]["webhook_id"] for p in audit_pages[: len(audited)]]
    assert listed == newest_first, (
        f"the first pages list webhooks {listed}; newest first they are {newest_first}"
    )


@then("no record is listed twice, and each page's record is older than the one before")
def _(audit_pages: list[list[dict[str, Any]]]) -> None:
    records = [item for page in audit_pages for item in page]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), f"records listed twice across pages: {ids}"
    keys = [(datetime.fromisoformat(r["created_at"]), r["id"]) for r in records]
    assert all(a > b for a, b in itertools.pairwise(keys)), f"pages not newest first: {keys}"


FILTERED_PAGES = 25  # one record a page: deep enough to reach records of other workspaces and statuses


@then("every page read with a workspace or status filter holds only records that match it")
def _(http: httpx.Client, admin: Credential, dev: Credential, recorder: ExchangeRecorder) -> None:
    """A cursor continues a filtered listing: the pages after the first are as filtered as the first
    (a cursor that "already pins the position" and drops the filters lists whatever is older)."""
    wrong: list[str] = []
    walked: dict[str, int] = {}
    for key, value in (("workspace", dev.workspace), ("status", "ok")):
        filtered = {key: value, "limit": 1}
        for page, doc in enumerate(walk_audit(http, admin, filtered, pages=FILTERED_PAGES)):
            wrong += [
                f"page {page + 1} of {key}={value}: record {i['id']} has {key} {i.get(key)!r}"
                for i in doc["items"]
                if i.get(key) != value
            ]
            walked[f"{key}={value}"] = page + 1
    recorder.note("audit_filtered_pages", {"pages": walked, "wrong": wrong})
    assert not wrong, "a filtered listing lost its filter on a later page:\n" + "\n".join(wrong[:10])


@when("an admin reads the audit log with these limits", target_fixture="audit_limits")
def _(
    http: httpx.Client, admin: Credential, datatable: list[list[str]], recorder: ExchangeRecorder
) -> list[tuple[int, int, httpx.Response]]:
    out = []
    for row in _table(datatable):
        r = http.get("/audit", headers=admin.authorization, params={"limit": row["limit"]})
        out.append((int(row["limit"]), int(row["status"]), r))
    recorder.note("audit_limits", [{"limit": n, "expected": s, "status": r.status_code} for n, s, r in out])
    return out


@then("each read is answered with the status listed, and none lists more records than its limit")
def _(audit_limits: list[tuple[int, int, httpx.Response]]) -> None:
    wrong = [
        f"limit={n}: {r.status_code}, expected {s} {r.text[:160]}"
        for n, s, r in audit_limits
        if r.status_code != s
    ]
    wrong += [
        f"limit={n}: {len(r.json()['items'])} records"
        for n, s, r in audit_limits
        if r.status_code == 200 and len(r.json()["items"]) > n
    ]
    assert not wrong, "limits not as documented (1-500):\n" + "\n".join(wrong)


# -- filters ---------------------------------------------------------------------------------------------


@given("the developer has executed two notify.send actions and one ticket.create", target_fixture="filtered")
def _(http: httpx.Client, dev: Credential, target: Target) -> dict[str, list[str]]:
    ticket = {"action": "ticket.create", "params": {"title": "relay-gate audit filters", "labels": ["gate"]}}
    runs: dict[str, list[Execution]] = {
        "notify.send": [
            admitted_execute(http, dev, ascii_notify(f"filters #{i}"), target=target) for i in (1, 2)
        ],
        "ticket.create": [admitted_execute(http, dev, ticket, target=target)],
    }
    out: dict[str, list[str]] = {}
    for action, executions in runs.items():
        for ex in executions:
            hook = webhook_id_of(ex)
            assert hook, f"{action} execute answered {ex.response.status_code}: {ex.response.text[:300]}"
            out.setdefault(action, []).append(hook)
    return out


@when(
    "an admin filters the workspace's audit records by action, by status and by another workspace",
    target_fixture="filter_reads",
)
def _(
    http: httpx.Client, admin: Credential, dev: Credential, target: Target, filtered: dict[str, list[str]]
) -> list[tuple[dict[str, str], list[dict[str, Any]], set[str]]]:
    ws = dev.workspace
    ours = {h for hooks in filtered.values() for h in hooks}
    status = {
        r["webhook_id"]: r["status"]
        for r in audit_rows(http, admin, pages=1, workspace=ws)
        if r["webhook_id"] in ours
    }
    assert set(status) == ours, f"executes missing from the audit log: {sorted(ours - set(status))}"
    ticket = filtered["ticket.create"][0]
    other = next((c.workspace for c in target.credentials.values() if c.workspace != ws), "relay-gate-other")
    # each read, and which of the executes it must list (all the others it must not)
    wanted: list[tuple[dict[str, str], set[str]]] = [
        ({"workspace": ws, "action": "ticket.create"}, set(filtered["ticket.create"])),
        ({"workspace": ws, "action": "notify.send"}, set(filtered["notify.send"])),
        ({"workspace": ws, "status": status[ticket]}, {h for h in ours if status[h] == status[ticket]}),
        ({"workspace": other}, set()),
    ]
    return [(params, audit_rows(http, admin, pages=1, **params), expected) for params, expected in wanted]


@then("each filter lists only records that match it, the executes among them exactly where they match")
def _(
    filter_reads: list[tuple[dict[str, str], list[dict[str, Any]], set[str]]],
    filtered: dict[str, list[str]],
    recorder: ExchangeRecorder,
) -> None:
    ours = {h for hooks in filtered.values() for h in hooks}
    wrong = []
    for params, rows, expected in filter_reads:
        off = [
            (r["id"], {k: r.get(k) for k in params})
            for r in rows
            if any(r.get(k) != v for k, v in params.items())
        ]
        if off:
            wrong.append(f"{params}: lists records that do not match: {off[:3]}")
        listed = {r["webhook_id"] for r in rows} & ours
        if listed != expected:
            wrong.append(f"{params}: lists executes {sorted(listed)}, expected {sorted(expected)}")
    recorder.note(
        "audit_filters",
        [{"params": p, "listed": len(rows), "expected": sorted(e)} for p, rows, e in filter_reads],
    )
    assert not wrong, "filters not as documented:\n" + "\n".join(wrong)


def _at(created_at: datetime, how: str) -> str:
    """``created_at`` moved by 1 s and written as ``how`` says (Z, no offset, or a given offset)."""
    when_, _, form = how.partition(", ")
    moment = created_at + timedelta(seconds=1 if when_ == "1 s after" else -1)
    utc = moment.astimezone(UTC)
    if form == "in UTC with Z":
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if form == "without offset":
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%f")
    sign, hh, mm = form[3], int(form[4:6]), int(form[7:9])
    offset = timedelta(hours=hh, minutes=mm) * (1 if sign == "+" else -1)
    return moment.astimezone(timezone(offset)).isoformat(timespec="microseconds")


@when(
    "an admin reads the workspace's ticket.create records with these time filters around its created_at",
    target_fixture="time_reads",
)
def _(
    http: httpx.Client,
    admin: Credential,
    dev: Credential,
    filtered: dict[str, list[str]],
    datatable: list[list[str]],
    recorder: ExchangeRecorder,
) -> list[tuple[dict[str, str], str, httpx.Response, bool]]:
    hook = filtered["ticket.create"][0]
    rows = [r for r in audit_rows(http, admin, pages=1, workspace=dev.workspace) if r["webhook_id"] == hook]
    assert rows, "the ticket.create execute is not in the audit log"
    created = datetime.fromisoformat(rows[0]["created_at"])
    out = []
    for row in _table(datatable):
        value = _at(created, row["time"])
        params = {"workspace": dev.workspace, "action": "ticket.create", "limit": 500, row["filter"]: value}
        r = http.get("/audit", headers=admin.authorization, params=params)
        found = r.status_code == 200 and any(i["webhook_id"] == hook for i in r.json()["items"])
        out.append((row, value, r, found))
    recorder.note(
        "audit_times",
        {
            "created_at": rows[0]["created_at"],
            "reads": [{**row, "sent": v, "status": r.status_code, "found": f} for row, v, r, f in out],
        },
    )
    return out


@then("each time filter finds the record or not, as listed")
def _(time_reads: list[tuple[dict[str, str], str, httpx.Response, bool]]) -> None:
    wrong = []
    for row, value, r, found in time_reads:
        if r.status_code != 200:
            wrong.append(f"{row['filter']}={value} ({row['time']}): {r.status_code} {r.text[:160]}")
        elif found != (row["finds it"] == "yes"):
            wrong.append(
                f"{row['filter']}={value} ({row['time']}): found {found}, expected {row['finds it']}"
            )
    assert not wrong, "date-time filters not as documented (RFC 3339; no offset means UTC):\n" + "\n".join(
        wrong
    )


# -- on file before the webhook leaves --------------------------------------------------------------------


@pytest.fixture
def hold_s(target: Target) -> float:
    return min(MAX_HOLD_S, 0.75 * target.delivery_timeout_s)


@pytest.fixture
def holding_receiver(receiver: ReceiverClient, hold_s: float) -> Iterator[ReceiverClient]:
    receiver.script(default_status=200, default_delay_s=hold_s)
    try:
        yield receiver
    finally:
        receiver.script()


@given("the receiver holds each delivery for a moment before answering")
def _(holding_receiver: ReceiverClient) -> None:
    pass


@when("the developer executes an action while the receiver holds its delivery", target_fixture="in_flight")
def _(
    http: httpx.Client,
    admin: Credential,
    dev: Credential,
    target: Target,
    recorder: ExchangeRecorder,
    holding_receiver: ReceiverClient,
    hold_s: float,
) -> dict[str, Any]:
    after = holding_receiver.last_seq()
    result: dict[str, Any] = {}

    def run() -> None:
        with recorder.client(target.base_url, timeout=target.request_timeout_s) as c:
            result["execution"] = admitted_execute(
                c, dev, ascii_notify("audit before delivery"), target=target
            )

    worker = threading.Thread(target=run, name="relay-gate-execute", daemon=True)
    worker.start()
    deadline = time.monotonic() + target.request_timeout_s
    caps = holding_receiver.captures(after)
    while not caps and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
        caps = holding_receiver.captures(after)
    held_at = time.monotonic()
    hook = caps[0].header("webhook-id") if caps else None
    pending = []
    if hook is not None:
        rows = audit_rows(http, admin, pages=1, workspace=dev.workspace, status="pending")
        pending = [r for r in rows if r["webhook_id"] == hook]
    read_in_s = time.monotonic() - held_at
    worker.join(timeout=target.request_timeout_s + hold_s)
    recorder.note(
        "pending_record",
        {"webhook_id": hook, "hold_s": hold_s, "read_within_s": round(read_in_s, 3), "pending_rows": pending},
    )
    return {"hook": hook, "pending": pending, "read_in_s": read_in_s, "execution": result.get("execution")}


@then("while the delivery was held, the audit log already listed the execute as pending")
def _(in_flight: dict[str, Any], hold_s: float) -> None:
    assert in_flight["hook"] is not None, "the receiver got no delivery from the execute"
    if not in_flight["pending"] and in_flight["read_in_s"] >= hold_s:
        # the delivery may have been answered before the read: nothing can be concluded either way
        skips.precondition(
            f"the audit log was read {in_flight['read_in_s']:.2f} s into a {hold_s:g} s hold: too late"
        )
    assert in_flight["pending"], (
        f"while webhook {in_flight['hook']} was in flight, GET /audit?status=pending did not list it: "
        "the audit record is written after the delivery"
    )


@then("once the delivery was answered, the execute's record is complete")
def _(in_flight: dict[str, Any], http: httpx.Client, admin: Credential, dev: Credential) -> None:
    ex: Execution | None = in_flight["execution"]
    assert ex is not None and ex.response.status_code == 200, (
        f"the execute answered {ex.response.status_code if ex else 'nothing'}"
    )
    rows = [
        r
        for r in audit_rows(http, admin, pages=1, workspace=dev.workspace)
        if r["webhook_id"] == in_flight["hook"]
    ]
    assert [r["status"] for r in rows] == ["ok"], f"the execute's records: {rows}"
