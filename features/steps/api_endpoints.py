"""Steps for features/api.feature, the endpoints as docs/service.md lists them: liveness and readiness,
the catalogue, /openapi.json, problem documents, 405 and Allow, the body limit, request ids, metrics.

Everything is observed over HTTP. The only control used is stopping PostgreSQL and killing Redis on
the reference stack (``@needs-control``), each restored — every replica seen ready again — in the
fixtures' cleanup (features/steps/audit.py, features/steps/rate_limit_outage.py). Evidence notes:
``probes``, ``problems``, ``allow``, ``body_limit``, ``request_ids``, ``metrics``.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_bdd import given, then, when

from features.support.api_support import (
    DELIVERY_WAIT_S,
    ascii_notify,
    in_chunks,
    metric_samples,
    padded,
    problem_issues,
)
from features.support.executes import Execution, admitted_execute
from features.support.recording import ExchangeRecorder
from gate.client.receiver import Capture, ReceiverClient
from gate.client.target import Credential, Target

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DOCUMENTED_METRICS = (
    ("http_requests_total", "counter"),
    ("http_request_duration_seconds", "histogram"),
    ("http_errors_total", "counter"),
    ("webhook_duration_seconds", "histogram"),
    ("webhook_deliveries_total", "counter"),
    ("rate_limit_breaches_total", "counter"),
    ("rate_limiter_backend", "gauge"),
    ("audit_write_failures_total", "counter"),
)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def _table(datatable: list[list[str]]) -> list[dict[str, str]]:
    head = [c.strip() for c in datatable[0]]
    return [dict(zip(head, (c.strip() for c in row), strict=True)) for row in datatable[1:]]


def _each_replica(target: Target, recorder: ExchangeRecorder, path: str) -> dict[str, httpx.Response]:
    out = {}
    for url in target.base_urls:
        with recorder.client(url, timeout=target.request_timeout_s) as c:
            out[url] = c.get(path)
    return out


# -- liveness and readiness ----------------------------------------------------------------------------


@when("a client probes liveness and readiness without an API key", target_fixture="probes")
def _(http: httpx.Client) -> dict[str, httpx.Response]:
    return {
        "GET /_stcore/health": http.get("/_stcore/health"),
        "HEAD /_stcore/health": http.head("/_stcore/health"),
        "GET /_stcore/ready": http.get("/_stcore/ready"),
    }


@then('liveness answers GET with 200 and {"ok": true}, and HEAD with 200 and no body')
def _(probes: dict[str, httpx.Response]) -> None:
    get, head = probes["GET /_stcore/health"], probes["HEAD /_stcore/health"]
    assert get.status_code == 200 and get.json() == {"ok": True}, (
        f"GET /_stcore/health: {get.status_code} {get.text[:200]}"
    )
    assert head.status_code == 200 and head.content == b"", (
        f"HEAD /_stcore/health: {head.status_code}, {len(head.content)} body bytes"
    )


@then("readiness answers 200 while the audit database answers")
def _(probes: dict[str, httpx.Response]) -> None:
    r = probes["GET /_stcore/ready"]
    assert r.status_code == 200, f"GET /_stcore/ready: {r.status_code} {r.text[:300]}"


@given("Redis is down")
def _(target: Target, rl_redis_restored: None) -> None:
    assert target.stack is not None  # @needs-control
    target.stack.kill_redis()


@then("every replica answers readiness with 200, reporting Redis")
def _(target: Target, recorder: ExchangeRecorder) -> None:
    answers = _each_replica(target, recorder, "/_stcore/ready")
    recorder.note("ready_redis_down", {u: [r.status_code, r.text[:300]] for u, r in answers.items()})
    wrong = [f"{u}: {r.status_code} {r.text[:200]}" for u, r in answers.items() if r.status_code != 200]
    assert not wrong, "with Redis down (the limiter falls back), readiness is not 200:\n" + "\n".join(wrong)
    silent = [u for u, r in answers.items() if "redis" not in r.text.lower()]
    assert not silent, f"readiness does not report Redis on {silent}"


@then("every replica answers liveness with 200")
def _(target: Target, recorder: ExchangeRecorder) -> None:
    answers = _each_replica(target, recorder, "/_stcore/health")
    wrong = [f"{u}: {r.status_code} {r.text[:200]}" for u, r in answers.items() if r.status_code != 200]
    assert not wrong, "liveness depends on something that is down:\n" + "\n".join(wrong)


@when("the audit database stops")
def _(audit_database_stopped: None) -> None:
    pass  # the fixture stops it, and restarts it (every replica ready again) after the scenario


@then("every replica answers readiness with 503 naming the database")
def _(target: Target, recorder: ExchangeRecorder) -> None:
    answers = _each_replica(target, recorder, "/_stcore/ready")
    recorder.note("ready_database_down", {u: [r.status_code, r.text[:300]] for u, r in answers.items()})
    wrong = [
        f"{u}: {r.status_code} {r.text[:200]}"
        for u, r in answers.items()
        if r.status_code != 503 or "database" not in r.text.lower()
    ]
    assert not wrong, "with the audit database down, readiness is not 503 naming it:\n" + "\n".join(wrong)


# -- the catalogue and the OpenAPI document ------------------------------------------------------------


@when("the catalogue is listed with a developer key and with an admin key", target_fixture="listings")
def _(http: httpx.Client, dev: Credential, admin: Credential) -> dict[str, httpx.Response]:
    return {
        "dev key": http.get("/actions", headers=dev.authorization),
        "admin key": http.get("/actions", headers=admin.authorization),
    }


@then(
    "both list exactly these actions, each with a description and a JSON schema of exactly these parameters"
)
def _(listings: dict[str, httpx.Response], datatable: list[list[str]], recorder: ExchangeRecorder) -> None:
    expected = {row["action"]: {p.strip() for p in row["parameters"].split(",")} for row in _table(datatable)}
    wrong = []
    for who, r in listings.items():
        if r.status_code != 200:
            wrong.append(f"{who}: GET /actions answered {r.status_code}")
            continue
        actions = {a.get("id"): a for a in r.json().get("actions", [])}
        if set(actions) != set(expected):
            wrong.append(f"{who}: lists {sorted(map(str, actions))}, not {sorted(expected)}")
        for name, params in expected.items():
            a = actions.get(name, {})
            schema = a.get("parameters")
            if not isinstance(a.get("description"), str) or not a.get("description"):
                wrong.append(f"{who}: {name} has no description")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                wrong.append(
                    f"{who}: {name}'s parameters are not a JSON schema of an object: {schema!r}"[:300]
                )
            elif set(schema.get("properties", {})) != params:
                wrong.append(f"{who}: {name}'s schema names {sorted(schema.get('properties', {}))}")
    recorder.note("catalogue", {who: r.text[:2000] for who, r in listings.items()})
    assert not wrong, "the catalogue is not the documented one:\n" + "\n".join(wrong)


@when("a client reads /openapi.json without an API key", target_fixture="openapi")
def _(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/openapi.json")
    assert r.status_code == 200, f"GET /openapi.json answered {r.status_code}"
    doc = r.json()
    assert isinstance(doc, dict) and isinstance(doc.get("paths"), dict), "no OpenAPI paths object"
    return doc


@then("it describes these operations")
def _(openapi: dict[str, Any], datatable: list[list[str]], recorder: ExchangeRecorder) -> None:
    paths = openapi["paths"]
    described = sorted(
        f"{m.upper()} {p}" for p, ops in paths.items() for m in ops if m.upper() in HTTP_METHODS
    )
    recorder.note("openapi_operations", described)
    missing = [row["operation"] for row in _table(datatable) if row["operation"] not in described]
    assert not missing, f"/openapi.json does not describe {missing}"


@then("GET /docs and GET /redoc are answered 404")
def _(http: httpx.Client) -> None:
    got = {path: http.get(path).status_code for path in ("/docs", "/redoc")}
    assert all(s == 404 for s in got.values()), f"an HTML docs UI answers: {got}"


# -- problem documents ---------------------------------------------------------------------------------

NOT_UTF8 = b'{"action": "notify.send", "params": {"channel": "ops", "message": "\xff\xfe"}}'
Request = Callable[[httpx.Client, Target, Credential, Credential], httpx.Response]


def _json(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


REQUESTS: dict[str, Request] = {
    "GET /actions without an API key": lambda h, t, d, a: h.get("/actions"),
    "GET /actions with an unknown API key": lambda h, t, d, a: h.get(
        "/actions", headers={"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
    ),
    "GET /audit with a developer key": lambda h, t, d, a: h.get("/audit", headers=d.authorization),
    "GET a path that does not exist": lambda h, t, d, a: h.get(f"/relay-gate-{uuid.uuid4().hex}"),
    "DELETE /actions/preview": lambda h, t, d, a: h.delete("/actions/preview", headers=d.authorization),
    "POST /actions/preview with a body over MAX_BODY_BYTES": lambda h, t, d, a: h.post(
        "/actions/preview",
        content=b" " * (t.max_body_bytes + 1),
        headers={**d.authorization, "Content-Type": "application/json"},
    ),
    "POST /actions/preview with a body that is not UTF-8": lambda h, t, d, a: h.post(
        "/actions/preview", content=NOT_UTF8, headers={**d.authorization, "Content-Type": "application/json"}
    ),
    "POST /actions/preview with a body that is not JSON": lambda h, t, d, a: h.post(
        "/actions/preview",
        content=b"{not json",
        headers={**d.authorization, "Content-Type": "application/json"},
    ),
    "POST /actions/preview naming an action that does not exist": lambda h, t, d, a: h.post(
        "/actions/preview",
        headers=d.authorization,
        json={"action": "notify.sned", "params": {"channel": "ops", "message": "m"}},
    ),
    "POST /actions/preview with a parameter of the wrong type": lambda h, t, d, a: h.post(
        "/actions/preview",
        headers=d.authorization,
        json={"action": "notify.send", "params": {"channel": "ops", "message": 42}},
    ),
    "GET /audit with limit 0": lambda h, t, d, a: h.get(
        "/audit", headers=a.authorization, params={"limit": 0}
    ),
    "GET /audit with a cursor it never issued": lambda h, t, d, a: h.get(
        "/audit", headers=a.authorization, params={"cursor": "relay-gate-not-a-cursor"}
    ),
    "GET /audit with a status that does not exist": lambda h, t, d, a: h.get(
        "/audit", headers=a.authorization, params={"status": "done"}
    ),
}


@when("a client sends each of these requests", target_fixture="answered")
def _(
    http: httpx.Client, target: Target, dev: Credential, admin: Credential, datatable: list[list[str]]
) -> list[tuple[str, str, httpx.Response]]:
    out = []
    for row in _table(datatable):
        send = REQUESTS.get(row["request"])
        assert send is not None, f"no step knows how to send {row['request']!r}"
        out.append((row["request"], row["status"], send(http, target, dev, admin)))
    return out


def _status_ok(expected: str, got: int) -> bool:
    return 400 <= got < 500 if expected == "4xx" else got == int(expected)


@then("each is answered with the status listed, as application/problem+json")
def _(answered: list[tuple[str, str, httpx.Response]], recorder: ExchangeRecorder) -> None:
    recorder.note(
        "problems",
        [
            {
                "request": d,
                "expected": s,
                "status": r.status_code,
                "content_type": r.headers.get("content-type"),
                "body": r.text[:400],
            }
            for d, s, r in answered
        ],
    )
    wrong = [
        f"{d}: {r.status_code} (expected {s}) {r.text[:160]}"
        for d, s, r in answered
        if not _status_ok(s, r.status_code)
    ]
    five = [d for d, _, r in answered if r.status_code >= 500]
    assert not five, f"bad input answered with a 5xx: {five}"
    assert not wrong, "statuses not as documented:\n" + "\n".join(wrong)


@then("every problem names its type, title, status, detail and the request id of its X-Request-ID")
def _(answered: list[tuple[str, str, httpx.Response]]) -> None:
    wrong = [f"{d}: {'; '.join(problem_issues(r))}" for d, _, r in answered if problem_issues(r)]
    assert not wrong, "refusals that are not the documented problem document:\n" + "\n".join(wrong)


# -- 405 and Allow -------------------------------------------------------------------------------------


@when(
    "a client without a key sends GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS to each of these paths",
    target_fixture="probed",
)
def _(http: httpx.Client, datatable: list[list[str]]) -> dict[str, dict[str, httpx.Response]]:
    out: dict[str, dict[str, httpx.Response]] = {}
    for row in _table(datatable):
        path = row["path"]
        out[path] = {}
        for method in METHODS:
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            out[path][method] = http.request(
                method, path, content=body, headers={"Content-Type": "application/json"} if body else {}
            )
    return out


def _served(answers: dict[str, httpx.Response]) -> set[str]:
    return {m for m, r in answers.items() if r.status_code != 405}


@then("every 405 carries one Allow header naming exactly the methods its path answered without 405")
def _(probed: dict[str, dict[str, httpx.Response]], recorder: ExchangeRecorder) -> None:
    wrong, evidence = [], {}
    for path, answers in probed.items():
        served = _served(answers)
        evidence[path] = {m: [r.status_code, r.headers.get_list("allow")] for m, r in answers.items()}
        for method, r in answers.items():
            if r.status_code != 405:
                continue
            allow = r.headers.get_list("allow")
            named = {m.strip().upper() for v in allow for m in v.split(",") if m.strip()}
            if len(allow) != 1 or named != served:
                wrong.append(f"{method} {path}: Allow {allow}, but the path serves {sorted(served)}")
    recorder.note("allow", evidence)
    assert not wrong, "405s whose Allow is not every method of the path:\n" + "\n".join(wrong)


@then("/_stcore/health serves GET and HEAD")
def _(probed: dict[str, dict[str, httpx.Response]]) -> None:
    served = _served(probed["/_stcore/health"])
    assert {"GET", "HEAD"} <= served, f"/_stcore/health serves {sorted(served)}"


# -- the body limit ------------------------------------------------------------------------------------


TRANSFERS = ("length", "chunked", "trickled")  # Content-Length; chunks sent at once; chunks 20 ms apart
TRICKLE_PAUSE_S = 0.02


def _size(expr: str, limit: int) -> int:
    sizes = {"MAX_BODY_BYTES": limit, "MAX_BODY_BYTES + 1": limit + 1, "2 x MAX_BODY_BYTES": 2 * limit}
    assert expr in sizes, f"unknown size {expr!r}: one of {sorted(sizes)}"
    return sizes[expr]


@when("the developer previews actions padded to these sizes", target_fixture="padded_previews")
def _(
    http: httpx.Client,
    dev: Credential,
    target: Target,
    datatable: list[list[str]],
    recorder: ExchangeRecorder,
) -> list[tuple[dict[str, str], httpx.Response]]:
    doc = json.dumps(ascii_notify("body limit")).encode()
    out = []
    for row in _table(datatable):
        body = padded(doc, _size(row["size"], target.max_body_bytes))
        assert row["transfer"] in TRANSFERS, f"unknown transfer {row['transfer']!r}: one of {TRANSFERS}"
        content = (
            body
            if row["transfer"] == "length"
            else in_chunks(body, pause_s=TRICKLE_PAUSE_S if row["transfer"] == "trickled" else 0.0)
        )
        r = http.post(
            "/actions/preview",
            content=content,
            headers={**dev.authorization, "Content-Type": "application/json"},
        )
        out.append((row, r))
    recorder.note(
        "body_limit",
        {"max_body_bytes": target.max_body_bytes, "sent": [{**row, "got": r.status_code} for row, r in out]},
    )
    return out


@then("each padded preview is answered with the status listed")
def _(padded_previews: list[tuple[dict[str, str], httpx.Response]]) -> None:
    wrong = [
        f"{row['size']} bytes ({row['transfer']}): {r.status_code}, expected {row['status']} {r.text[:160]}"
        for row, r in padded_previews
        if r.status_code != int(row["status"])
    ]
    assert not wrong, "the body limit does not hold at its edge:\n" + "\n".join(wrong)


# -- request ids ---------------------------------------------------------------------------------------


@when(
    "a client sends requests that succeed and requests that fail, each with an X-Request-ID of its own",
    target_fixture="identified",
)
def _(http: httpx.Client, dev: Credential, target: Target) -> list[tuple[str, str, httpx.Response]]:
    sends: list[tuple[str, Callable[[dict[str, str]], httpx.Response]]] = [
        ("GET /_stcore/health", lambda h: http.get("/_stcore/health", headers=h)),
        ("GET /actions", lambda h: http.get("/actions", headers={**h, **dev.authorization})),
        (
            "POST /actions/preview",
            lambda h: http.post(
                "/actions/preview", headers={**h, **dev.authorization}, json=ascii_notify("request ids")
            ),
        ),
        ("GET /actions without a key", lambda h: http.get("/actions", headers=h)),
        ("GET /audit with a dev key", lambda h: http.get("/audit", headers={**h, **dev.authorization})),
        ("GET a path that does not exist", lambda h: http.get(f"/relay-gate-{uuid.uuid4().hex}", headers=h)),
        ("DELETE /actions", lambda h: http.delete("/actions", headers=h)),
        (
            "POST over MAX_BODY_BYTES",
            lambda h: http.post(
                "/actions/preview",
                headers={**h, **dev.authorization, "Content-Type": "application/json"},
                content=b" " * (target.max_body_bytes + 1),
            ),
        ),
        (
            "POST /actions/preview, invalid",
            lambda h: http.post(
                "/actions/preview", headers={**h, **dev.authorization}, json={"action": "notify.send"}
            ),
        ),
    ]
    out = []
    for i, (what, send) in enumerate(sends):
        # a UUID for half of them (what a tracing client sends), free text for the others
        mine = str(uuid.uuid4()) if i % 2 == 0 else f"relay-gate-client-{uuid.uuid4().hex[:8]}"
        out.append((what, mine, send({"X-Request-ID": mine})))
    return out


@then(
    "every response carries exactly one X-Request-ID, a UUID unlike the client's and unlike every other "
    "response's"
)
def _(identified: list[tuple[str, str, httpx.Response]], recorder: ExchangeRecorder) -> None:
    wrong, seen = [], set()
    recorder.note(
        "request_ids",
        [
            {"request": w, "status": r.status_code, "sent": mine, "got": r.headers.get_list("x-request-id")}
            for w, mine, r in identified
        ],
    )
    for what, mine, r in identified:
        got = r.headers.get_list("x-request-id")
        if len(got) != 1:
            wrong.append(f"{what} ({r.status_code}): X-Request-ID {got}")
            continue
        try:
            uuid.UUID(got[0])
        except ValueError:
            wrong.append(f"{what}: X-Request-ID {got[0]!r} is not a UUID")
        if got[0] == mine:
            wrong.append(f"{what}: X-Request-ID is the one the client sent")
        if got[0] in seen:
            wrong.append(f"{what}: X-Request-ID {got[0]} was given to another response too")
        seen.add(got[0])
    assert not wrong, "request ids not minted by the service:\n" + "\n".join(wrong)


@when("the developer executes an action with an X-Request-ID of its own", target_fixture="traced")
def _(
    http: httpx.Client, dev: Credential, target: Target, receiver: ReceiverClient
) -> tuple[str, Execution, Capture]:
    mine = str(uuid.uuid4())
    after = receiver.last_seq()
    ex = admitted_execute(
        http, dev, ascii_notify("client request id"), target=target, headers={"X-Request-ID": mine}
    )
    assert ex.response.status_code == 200, (
        f"execute answered {ex.response.status_code}: {ex.response.text[:300]}"
    )
    marker = ex.body["params"]["message"]  # unique: it finds the delivery without trusting any id
    deadline = time.monotonic() + DELIVERY_WAIT_S
    caps: list[Capture] = []
    while not caps and time.monotonic() < deadline:
        caps = [c for c in receiver.captures(after) if marker.encode() in c.body]
        time.sleep(0.02)
    assert caps, "the receiver got no delivery of the execute's action"
    return mine, ex, caps[-1]


@then("the delivery and the execute carry the service's request id, not the client's")
def _(traced: tuple[str, Execution, Capture], recorder: ExchangeRecorder) -> None:
    mine, ex, cap = traced
    header, body, delivered = (
        ex.response.headers.get("x-request-id"),
        ex.json.get("request_id"),
        cap.header("X-Request-ID"),
    )
    recorder.note(
        "execute_request_id",
        {"client": mine, "response_header": header, "response_body": body, "delivery": delivered},
    )
    assert mine not in (header, body, delivered), "the client's X-Request-ID was taken as the request's id"
    assert header == body == delivered, (
        f"the execute's X-Request-ID {header}, its request_id {body} and the delivery's {delivered} differ"
    )


# -- metrics -------------------------------------------------------------------------------------------


@pytest.fixture
def random_names() -> dict[str, str]:
    return {"path": f"/relay-gate-{uuid.uuid4().hex}", "method": "RELAYGATE" + secrets.token_hex(4).upper()}


@when("a client requests a path and uses a method that do not exist, each named at random")
def _(http: httpx.Client, random_names: dict[str, str]) -> None:
    assert http.get(random_names["path"]).status_code == 404
    assert http.request(random_names["method"], "/actions").status_code in (400, 405, 501)


@when("the developer executes an action")
def _(http: httpx.Client, dev: Credential, target: Target) -> None:
    ex = admitted_execute(http, dev, ascii_notify("metrics"), target=target)
    assert ex.response.status_code in (200, 502), f"execute answered {ex.response.status_code}"


@when("the metrics are read from the same replica", target_fixture="exposition")
def _(http: httpx.Client) -> httpx.Response:
    return http.get("/metrics")


@then("they are in the Prometheus text format and name every documented metric")
def _(exposition: httpx.Response, recorder: ExchangeRecorder) -> None:
    assert exposition.status_code == 200, f"GET /metrics answered {exposition.status_code}"
    ctype = exposition.headers.get("content-type", "")
    assert ctype.startswith("text/plain"), f"GET /metrics is {ctype!r}, not the Prometheus text format"
    metric_samples(exposition.text)  # parses, or raises naming the line
    declared = {
        tuple(line.split()[2:4]) for line in exposition.text.splitlines() if line.startswith("# TYPE ")
    }
    recorder.note("metrics_declared", sorted(" ".join(d) for d in declared))
    missing = [f"{n} ({t})" for n, t in DOCUMENTED_METRICS if (n, t) not in declared]
    assert not missing, f"/metrics does not declare {missing}"


@then("http_request_duration_seconds has buckets at 0.05 and 1.2, and webhook_duration_seconds at 1.2")
def _(exposition: httpx.Response) -> None:
    samples = metric_samples(exposition.text)

    def buckets(name: str) -> set[str]:
        return {s.labels.get("le", "") for s in samples if s.name == f"{name}_bucket"}

    http_b, hook_b = buckets("http_request_duration_seconds"), buckets("webhook_duration_seconds")
    assert {"0.05", "1.2"} <= http_b, f"http_request_duration_seconds buckets: {sorted(http_b)}"
    assert "1.2" in hook_b, f"webhook_duration_seconds buckets: {sorted(hook_b)}"


@then("the random path is counted under the unmatched route and the random method as OTHER, neither by name")
def _(exposition: httpx.Response, random_names: dict[str, str], recorder: ExchangeRecorder) -> None:
    requests = [s for s in metric_samples(exposition.text) if s.name == "http_requests_total"]
    leaked = sorted(
        {
            v
            for s in requests
            for v in s.labels.values()
            if random_names["path"] in v or random_names["method"] in v
        }
    )
    methods = sorted({s.labels.get("method", "") for s in requests} - HTTP_METHODS - {"OTHER"})
    recorder.note("metrics_labels", {"random": random_names, "leaked": leaked, "other_methods": methods})
    assert not leaked, f"label values a client chose: {leaked}"
    assert not methods, f"method label values outside the HTTP methods and OTHER: {methods}"
    unmatched = [
        s for s in requests if s.labels.get("route") == "<unmatched>" and s.labels.get("status") == "404"
    ]
    other = [s for s in requests if s.labels.get("method") == "OTHER"]
    assert unmatched, "no 404 counted under route <unmatched>"
    assert other, "no request counted under method OTHER"
