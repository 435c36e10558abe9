"""The relay service end to end over TCP: real uvicorn, real PostgreSQL, real Redis, a real receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from gate.client.receiver import ReceiverClient
from gate.stack.procs import free_port
from gate.stack.redis_server import EmbeddedRedis
from service.config import ApiKey, Settings
from service.signing import verify_standard, verify_x_signature
from tests.service.serving import serve

pytestmark = pytest.mark.stack

ADMIN = "admin-key-0123456789abcdef"
DEV = "dev-key-0123456789abcdef00"
OTHER = "other-key-0123456789abcdef"
SECRET = "s" * 64
NOTIFY = {"action": "notify.send", "params": {"channel": "ops-alerts", "message": "deploy done"}}


def make_settings(receiver_url: str, database_url: str | None, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "_env_file": None,
        "admin_key": ADMIN,
        "dev_key": DEV,
        "api_keys": [ApiKey(key=OTHER, role="dev", workspace="ws-other")],
        "actions_signing_secret": SECRET,
        "webhook_url": f"{receiver_url}/hooks/relay",
        "database_url": database_url,
        "rate_limit_exec_per_min": 100,
        "webhook_backoff_base_s": 0.01,
    }
    base.update(overrides)
    return Settings(**base)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def audit_rows(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT request_id::text, workspace, action, status, delivery_status, attempts FROM audit_log "
            "ORDER BY id"
        ).fetchall()


def test_health_ready_and_list(receiver: ReceiverClient, pg_database: str) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        assert c.get("/_stcore/health").json() == {"ok": True}
        assert c.head("/_stcore/health").status_code == 200
        ready = c.get("/_stcore/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"
        actions = c.get("/actions", headers=auth(DEV)).json()["actions"]
        assert {a["id"] for a in actions} == {"notify.send", "ticket.create", "deploy.promote"}
        assert all(a["parameters"]["type"] == "object" for a in actions)


def test_ready_names_the_database_when_it_is_down(receiver: ReceiverClient) -> None:
    dead = f"postgresql://postgres:pw@127.0.0.1:{free_port()}/relay"
    with serve(make_settings(receiver.base_url, dead, db_timeout_s=0.5)) as c:
        r = c.get("/_stcore/ready")
        assert r.status_code == 503
        assert "database" in r.json()["detail"]
        assert "pw@" not in r.text


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"Authorization": "Bearer not-a-real-key-at-all"}, "invalid_token"),
        ({"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, "invalid_request"),
        ({"Authorization": "Bearer"}, "invalid_request"),
    ],
)
def test_unauthenticated_is_401_with_challenge(
    receiver: ReceiverClient, headers: dict[str, str], error: str | None
) -> None:
    with serve(make_settings(receiver.base_url, None)) as c:
        r = c.get("/actions", headers=headers)
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Bearer")
        if error:
            assert f'error="{error}"' in challenge


def test_dev_key_gets_403_on_audit(receiver: ReceiverClient, pg_database: str) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        assert c.get("/audit", headers=auth(DEV)).status_code == 403
        assert c.get("/audit", headers=auth(ADMIN)).status_code == 200


def test_preview_then_execute_delivers_exactly_the_previewed_bytes(
    receiver: ReceiverClient, pg_database: str
) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        p = c.post("/actions/preview", headers=auth(DEV), json=NOTIFY)
        assert p.status_code == 200, p.text
        preview = p.json()
        assert preview["destination_host"] == receiver.base_url.removeprefix("http://")
        assert receiver.captures() == [], "preview must not deliver anything"
        assert audit_rows(pg_database) == [], "preview must not write audit rows"

        e = c.post("/actions/execute", headers=auth(DEV), json={"preview_id": preview["preview_id"]})
        assert e.status_code == 200, e.text
        result = e.json()
        assert result["delivery"] == {"status": "delivered", "http_status": 200, "attempts": 1}
        assert e.headers["x-request-id"] == result["request_id"]

        (cap,) = receiver.wait_for(1)
        assert cap.body == preview["body"].encode()
        assert cap.path == "/hooks/relay"
        assert cap.header("X-Request-ID") == result["request_id"]
        assert cap.header("webhook-id") == result["webhook_id"]
        key = SECRET.encode()
        verify_x_signature([key], cap.body, cap.header("X-Signature"))
        verify_standard([key], cap.body, cap.header_map())

        rows = audit_rows(pg_database)
        assert rows == [(result["request_id"], "default", "notify.send", "ok", "delivered", 1)]


def test_request_ids_are_unique_and_not_client_chosen(receiver: ReceiverClient, pg_database: str) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        ids = set()
        for _ in range(5):
            r = c.post(
                "/actions/execute", headers={**auth(DEV), "X-Request-ID": "chosen-by-client"}, json=NOTIFY
            )
            assert r.status_code == 200, r.text
            ids.add(r.json()["request_id"])
        caps = receiver.wait_for(5)
        assert {cap.header("X-Request-ID") for cap in caps} == ids
        assert len(ids) == 5 and "chosen-by-client" not in ids
        assert len({cap.header("webhook-id") for cap in caps}) == 5


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 422),
        (b'{"action": "notify.send", "params": {"channel": 5, "message": "x"}}', "application/json", 422),
        (b'{"action": "launch.missiles", "params": {}}', "application/json", 422),
        (
            b'{"action": "notify.send", "params": {"channel": "a", "message": "x", "extra": 1}}',
            "application/json",
            422,
        ),
        (
            b'{"action": "notify.send", "params": {"channel": "a", "message": "\xff\xfe"}}',
            "application/json",
            None,
        ),
        (b"[]", "application/json", 422),
        (b"action=notify.send", "application/x-www-form-urlencoded", 422),
        (b'{"preview_id": "x"}', "application/json", 422),
        (b'{"preview_id": "' + b"A" * 40 + b"." + b"B" * 40 + b'"}', "application/json", 422),
    ],
)
def test_bad_input_is_a_4xx_problem_never_a_5xx(
    receiver: ReceiverClient, pg_database: str, body: bytes, content_type: str, status: int | None
) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        for path in ("/actions/preview", "/actions/execute"):
            r = c.post(path, headers={**auth(DEV), "Content-Type": content_type}, content=body)
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
            if status is not None:
                assert r.status_code == status, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    assert receiver.captures() == []


def test_oversized_body_is_413(receiver: ReceiverClient) -> None:
    with serve(make_settings(receiver.base_url, None, max_body_bytes=1024)) as c:
        big = {"action": "notify.send", "params": {"channel": "a", "message": "x" * 5000}}
        r = c.post("/actions/execute", headers=auth(DEV), json=big)
        assert r.status_code == 413

        def chunks() -> Iterator[bytes]:
            yield b'{"action": "notify.send", "params": {"channel": "a", "message": "'
            for _ in range(20):
                yield b"x" * 100
            yield b'"}}'

        r = c.post(
            "/actions/preview", headers={**auth(DEV), "Content-Type": "application/json"}, content=chunks()
        )
        assert r.status_code == 413


def test_destination_outside_the_allowlist_is_refused(receiver: ReceiverClient, pg_database: str) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        for dest in (
            "http://169.254.169.254/latest/meta-data",
            "http://user:pw@127.0.0.1:1/x",
            "file:///etc/passwd",
        ):
            r = c.post("/actions/execute", headers=auth(DEV), json={**NOTIFY, "destination": dest})
            assert r.status_code == 422, (dest, r.text)
    assert receiver.captures() == []


def test_preview_ids_are_bound_to_their_workspace_and_cannot_be_forged(
    receiver: ReceiverClient, pg_database: str
) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        pid = c.post("/actions/preview", headers=auth(DEV), json=NOTIFY).json()["preview_id"]
        r = c.post("/actions/execute", headers=auth(OTHER), json={"preview_id": pid})
        assert r.status_code == 422 and "another workspace" in r.json()["detail"]
        payload, mac = pid.split(".")
        forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
        r = c.post("/actions/execute", headers=auth(DEV), json={"preview_id": forged})
        assert r.status_code == 422
    assert receiver.captures() == []


def test_rate_limit_on_redis_per_workspace(
    receiver: ReceiverClient, pg_database: str, redis_server: EmbeddedRedis
) -> None:
    settings = make_settings(
        receiver.base_url,
        pg_database,
        rate_limit_exec_per_min=3,
        rate_limit_window_s=3600,
        redis_url=redis_server.url,
    )
    # a workspace name unique to this test, so the shared Redis holds no earlier counts for it
    ws = f"rl-{uuid.uuid4().hex[:8]}"
    key = f"rl-key-{uuid.uuid4().hex}"
    settings.api_keys.append(ApiKey(key=key, role="dev", workspace=ws))
    with serve(settings) as c:
        statuses = []
        remaining = []
        for _ in range(5):
            # a client-supplied workspace header and field must not move it to another counter
            r = c.post(
                "/actions/execute",
                headers={**auth(key), "X-Workspace-ID": "default"},
                json=NOTIFY,
            )
            statuses.append(r.status_code)
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
        assert statuses == [200, 200, 200, 429, 429]
        assert remaining == [2, 1, 0, 0, 0]
        refused = r
        assert refused.headers["cache-control"] == "no-store"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["x-ratelimit-limit"] == "3"
        assert refused.headers["ratelimit-policy"] == '"workspace";q=3;w=3600'
        assert refused.headers["ratelimit"].startswith('"workspace";r=0;t=')
        assert refused.headers["content-type"].startswith("application/problem+json")
        # another workspace still has its whole quota
        assert c.post("/actions/execute", headers=auth(OTHER), json=NOTIFY).status_code == 200
        metrics = c.get("/metrics").text
        assert f'rate_limit_breaches_total{{workspace="{ws}"}} 2.0' in metrics
        assert 'rate_limiter_backend{backend="redis"} 1.0' in metrics
    assert len(receiver.captures()) == 4


def test_rate_limit_disabled_admits_everything(receiver: ReceiverClient, pg_database: str) -> None:
    settings = make_settings(
        receiver.base_url, pg_database, rate_limit_exec_per_min=1, rate_limit_enabled=False
    )
    with serve(settings) as c:
        for _ in range(4):
            r = c.post("/actions/execute", headers=auth(DEV), json=NOTIFY)
            assert r.status_code == 200
            assert "x-ratelimit-remaining" not in r.headers


def test_audit_unavailable_means_503_and_no_webhook(receiver: ReceiverClient) -> None:
    dead = f"postgresql://postgres:pw@127.0.0.1:{free_port()}/relay"
    with serve(make_settings(receiver.base_url, dead, db_timeout_s=0.5)) as c:
        r = c.post("/actions/execute", headers=auth(DEV), json=NOTIFY)
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert "nothing was delivered" in r.json()["detail"]
        # list and preview do not need the database
        assert c.get("/actions", headers=auth(DEV)).status_code == 200
        assert c.post("/actions/preview", headers=auth(DEV), json=NOTIFY).status_code == 200
    assert receiver.captures() == []


def test_failed_delivery_is_502_and_audited_as_error(receiver: ReceiverClient, pg_database: str) -> None:
    receiver.script(default_status=500)
    with serve(make_settings(receiver.base_url, pg_database, webhook_max_attempts=2)) as c:
        r = c.post("/actions/execute", headers=auth(DEV), json=NOTIFY)
        assert r.status_code == 502
        body = r.json()
        assert body["execution"]["delivery"]["attempts"] == 2
    caps = receiver.captures()
    assert len(caps) == 2 and caps[0].header("webhook-id") == caps[1].header("webhook-id")
    ((rid, _, _, status, delivery, attempts),) = audit_rows(pg_database)
    assert (status, delivery, attempts) == ("error", "failed", 2)
    assert rid == body["request_id"]


def test_audit_listing_filters_and_pages(receiver: ReceiverClient, pg_database: str) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        made = [
            c.post("/actions/execute", headers=auth(DEV), json=NOTIFY).json()["request_id"] for _ in range(5)
        ]
        receiver.script(default_status=400)
        c.post("/actions/execute", headers=auth(OTHER), json=NOTIFY)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"status": "ok", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/audit", headers=auth(ADMIN), params=params)
            assert page.status_code == 200, page.text
            doc = page.json()
            seen += [item["request_id"] for item in doc["items"]]
            cursor = doc["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(made))
        errs = c.get("/audit", headers=auth(ADMIN), params={"status": "error"}).json()["items"]
        assert [e["workspace"] for e in errs] == ["ws-other"]
        ws = c.get("/audit", headers=auth(ADMIN), params={"workspace": "ws-other"}).json()["items"]
        assert len(ws) == 1
        for bad in (
            {"limit": 501},
            {"limit": 0},
            {"cursor": "garbage!"},
            {"status": "weird"},
            {"workspace": "a:b*"},
            {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
            {"since": "yesterday"},
        ):
            r = c.get("/audit", headers=auth(ADMIN), params=bad)
            assert r.status_code == 422, (bad, r.text)


def test_metrics_use_route_templates_and_slo_buckets(receiver: ReceiverClient, pg_database: str) -> None:
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        c.get("/actions", headers=auth(DEV))
        c.post("/actions/execute", headers=auth(DEV), json=NOTIFY)
        c.get("/definitely/not/a/route/12345")
        c.request("BREW", "/actions")
        text = c.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/actions",status="200"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.05",route="/actions"}' in text
    assert 'http_request_duration_seconds_bucket{le="1.2",route="/actions/execute"}' in text
    assert 'webhook_duration_seconds_bucket{le="1.2",outcome="delivered"}' in text
    assert 'route="<unmatched>"' in text and "12345" not in text
    assert 'method="OTHER"' in text and "BREW" not in text
    assert "http_errors_total" in text


def test_openapi_describes_every_route_with_problem_responses(receiver: ReceiverClient) -> None:
    with serve(make_settings(receiver.base_url, None)) as c:
        doc = c.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths) == {
        "/_stcore/health",
        "/_stcore/ready",
        "/actions",
        "/actions/preview",
        "/actions/execute",
        "/audit",
        "/metrics",
    }
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert "Problem" in doc["components"]["schemas"]
    execute = paths["/actions/execute"]["post"]
    assert execute["security"] == [{"apiKey": []}]
    for code in ("401", "413", "422", "429", "502", "503"):
        assert "application/problem+json" in execute["responses"][code]["content"], code
    assert "application/json" in execute["responses"]["200"]["content"]
    assert "security" not in paths["/_stcore/health"]["get"]


def test_unauthenticated_bodies_are_refused_before_they_are_parsed(receiver: ReceiverClient) -> None:
    with serve(make_settings(receiver.base_url, None)) as c:
        for path in ("/actions/preview", "/actions/execute"):
            for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}):
                r = c.post(path, headers={**headers, "Content-Type": "application/json"}, content=b"{broken")
                assert r.status_code == 401, (path, r.status_code, r.text)
                assert "www-authenticate" in r.headers


def test_a_delivery_that_gave_up_is_counted_failed(receiver: ReceiverClient, pg_database: str) -> None:
    receiver.script(default_status=404)  # a non-retryable status: it gives up after one attempt
    with serve(make_settings(receiver.base_url, pg_database)) as c:
        assert c.post("/actions/execute", headers=auth(DEV), json=NOTIFY).status_code == 502
        receiver.script()
        assert c.post("/actions/execute", headers=auth(DEV), json=NOTIFY).status_code == 200
        text = c.get("/metrics").text
    assert 'webhook_deliveries_total{status="failed"} 1.0' in text
    assert 'webhook_deliveries_total{status="delivered"} 1.0' in text
    assert 'webhook_duration_seconds_count{outcome="client_error"} 1.0' in text
