"""The audit log against a real PostgreSQL: migrations, writes, queries and pagination, outages."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import psycopg.sql
import pytest

from gate.stack.postgres.server import EmbeddedPostgres
from gate.stack.procs import free_port
from service.audit import (
    MAX_LIMIT,
    AuditLog,
    AuditRecord,
    AuditUnavailable,
    current_revision,
    downgrade,
    head_revisions,
    migrate,
)

pytestmark = pytest.mark.stack

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
BASE = datetime(2025, 10, 7, 12, 0, tzinfo=UTC)
# Outage answers must come quickly; the bound is generous because runners are noisy.
QUICK_S = 5.0


def run(factory: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await factory()

    return asyncio.run(main())


async def with_log(url: str, body: Callable[[AuditLog], Awaitable[T]], **kwargs: Any) -> T:
    log = AuditLog(url, **kwargs)
    await log.open()
    try:
        return await body(log)
    finally:
        await log.close()


def rows(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def seed(url: str, specs: list[dict[str, Any]]) -> None:
    """Insert rows directly, with chosen created_at values (begin() always stamps now())."""
    with psycopg.connect(url) as conn:
        for spec in specs:
            done = spec.get("status", "ok") != "pending"
            conn.execute(
                "INSERT INTO audit_log (request_id, webhook_id, workspace, action, role, status,"
                " delivery_status, created_at, completed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    uuid.uuid4(),
                    f"msg_{uuid.uuid4().hex}",
                    spec.get("workspace", "acme"),
                    spec.get("action", "deploy"),
                    "dev",
                    spec.get("status", "ok"),
                    "delivered" if done else "pending",
                    spec["created_at"],
                    spec["created_at"] if done else None,
                ),
            )


@pytest.fixture
def unmigrated_db(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"bare_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    yield pg_server.url(name)
    pg_server.drop_database(name)


# -- migrations --------------------------------------------------------------------------------------


def columns(url: str) -> dict[str, tuple[str, str]]:
    return {
        name: (dtype, nullable)
        for name, dtype, nullable in rows(
            url,
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_name = 'audit_log'",
        )
    }


def test_the_migrations_have_a_single_head() -> None:
    assert head_revisions() == ("0001",)


def test_migration_round_trip(unmigrated_db: str) -> None:
    url = unmigrated_db
    assert current_revision(url) is None
    migrate(url)
    assert current_revision(url) == "0001"
    cols = columns(url)
    assert cols == {
        "id": ("bigint", "NO"),
        "request_id": ("uuid", "NO"),
        "webhook_id": ("text", "NO"),
        "workspace": ("text", "NO"),
        "action": ("text", "NO"),
        "role": ("text", "NO"),
        "status": ("text", "NO"),
        "delivery_status": ("text", "NO"),
        "http_status": ("integer", "YES"),
        "attempts": ("integer", "NO"),
        "latency_ms": ("double precision", "YES"),
        "created_at": ("timestamp with time zone", "NO"),
        "completed_at": ("timestamp with time zone", "YES"),
    }
    indexes = {
        name: ddl
        for name, ddl in rows(url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_log'")
    }
    assert "created_at DESC, id DESC" in indexes["ix_audit_log_created_at_id"]
    assert "(workspace, created_at)" in indexes["ix_audit_log_workspace_created_at"]
    assert "UNIQUE" in indexes["uq_audit_log_request_id"]

    downgrade(url)
    assert current_revision(url) is None
    assert columns(url) == {}

    migrate(url)
    assert current_revision(url) == "0001"
    assert columns(url) == cols


def test_the_alembic_cli_migrates_from_any_directory(unmigrated_db: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": unmigrated_db}
    res = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert current_revision(unmigrated_db) == "0001"
    assert unmigrated_db.split("@")[0].split(":")[-1] not in res.stdout + res.stderr  # no password echoed


def test_the_schema_refuses_bad_rows(pg_database: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        seed(pg_database, [{"status": "maybe", "created_at": BASE}])


# -- writes ------------------------------------------------------------------------------------------


def test_begin_then_complete_writes_exactly_one_row(pg_database: str) -> None:
    rid = uuid.uuid4()

    async def body(log: AuditLog) -> int:
        row_id = await log.begin(
            request_id=rid, webhook_id="msg_1", workspace="acme", action="deploy", role="dev"
        )
        pending = rows(pg_database, "SELECT status, delivery_status, completed_at FROM audit_log")
        assert pending == [("pending", "pending", None)]
        await log.complete(
            row_id, status="ok", delivery_status="delivered", http_status=200, attempts=2, latency_ms=12.5
        )
        return row_id

    row_id = run(lambda: with_log(pg_database, body))
    got = rows(
        pg_database,
        "SELECT id, request_id, webhook_id, workspace, action, role, status, delivery_status, http_status,"
        " attempts, latency_ms, completed_at >= created_at FROM audit_log",
    )
    assert got == [(row_id, rid, "msg_1", "acme", "deploy", "dev", "ok", "delivered", 200, 2, 12.5, True)]


def test_complete_refuses_unknown_or_completed_rows_and_bad_values(pg_database: str) -> None:
    async def body(log: AuditLog) -> None:
        row_id = await log.begin(
            request_id=uuid.uuid4(), webhook_id="m", workspace="acme", action="a", role="dev"
        )
        await log.complete(
            row_id, status="error", delivery_status="failed", http_status=None, attempts=3, latency_ms=1.0
        )
        with pytest.raises(LookupError, match="already complete"):
            await log.complete(
                row_id, status="ok", delivery_status="delivered", http_status=200, attempts=1, latency_ms=1
            )
        with pytest.raises(LookupError):
            await log.complete(
                row_id + 1000, status="ok", delivery_status="x", http_status=200, attempts=1, latency_ms=1
            )
        not_final: Any = "pending"  # what a careless caller could pass at run time
        with pytest.raises(ValueError, match="status"):
            await log.complete(
                row_id, status=not_final, delivery_status="x", http_status=None, attempts=1, latency_ms=1
            )

    run(lambda: with_log(pg_database, body))
    assert rows(pg_database, "SELECT status, http_status FROM audit_log") == [("error", None)]


def test_a_duplicate_request_id_is_a_value_error(pg_database: str) -> None:
    rid = uuid.uuid4()

    async def body(log: AuditLog) -> None:
        await log.begin(request_id=rid, webhook_id="m1", workspace="acme", action="a", role="dev")
        with pytest.raises(ValueError, match="UniqueViolation"):
            await log.begin(request_id=rid, webhook_id="m2", workspace="acme", action="a", role="dev")

    run(lambda: with_log(pg_database, body))


# -- queries -----------------------------------------------------------------------------------------


def query(url: str, **kwargs: Any) -> tuple[list[AuditRecord], str | None]:
    return run(lambda: with_log(url, lambda log: log.query(**kwargs)))


def test_query_filters_newest_first(pg_database: str) -> None:
    seed(
        pg_database,
        [
            {"created_at": BASE, "workspace": "acme", "action": "deploy", "status": "ok"},
            {
                "created_at": BASE + timedelta(minutes=1),
                "workspace": "acme",
                "action": "rollback",
                "status": "error",
            },
            {
                "created_at": BASE + timedelta(minutes=2),
                "workspace": "globex",
                "action": "deploy",
                "status": "ok",
            },
            {
                "created_at": BASE + timedelta(minutes=3),
                "workspace": "globex",
                "action": "deploy",
                "status": "pending",
            },
        ],
    )

    def minutes(records: list[AuditRecord]) -> list[int]:
        return [int((r.created_at - BASE).total_seconds() // 60) for r in records]

    assert minutes(query(pg_database)[0]) == [3, 2, 1, 0]
    assert minutes(query(pg_database, status="ok")[0]) == [2, 0]
    assert minutes(query(pg_database, workspace="acme")[0]) == [1, 0]
    assert minutes(query(pg_database, action="deploy")[0]) == [3, 2, 0]
    assert minutes(query(pg_database, workspace="globex", status="pending")[0]) == [3]
    assert minutes(query(pg_database, since=BASE + timedelta(minutes=1))[0]) == [3, 2, 1]  # inclusive
    assert minutes(query(pg_database, until=BASE + timedelta(minutes=2))[0]) == [1, 0]  # exclusive
    window = query(pg_database, since=BASE + timedelta(minutes=1), until=BASE + timedelta(minutes=3))
    assert minutes(window[0]) == [2, 1]
    assert query(pg_database, workspace="initech") == ([], None)

    record = query(pg_database, status="pending")[0][0]
    as_json = json.loads(json.dumps(record.to_json()))
    assert as_json["status"] == "pending" and as_json["completed_at"] is None
    assert datetime.fromisoformat(as_json["created_at"]) == BASE + timedelta(minutes=3)
    assert uuid.UUID(as_json["request_id"]) == record.request_id


def test_query_refuses_bad_arguments_before_touching_the_database(pg_database: str) -> None:
    for bad in ({"limit": 0}, {"limit": MAX_LIMIT + 1}, {"status": "maybe"}, {"since": datetime(2025, 1, 1)}):
        with pytest.raises(ValueError):
            query(pg_database, **bad)
    assert query(pg_database, limit=MAX_LIMIT) == ([], None)
    assert query(pg_database, limit=1) == ([], None)


def test_cursor_pagination_visits_every_row_once(pg_database: str) -> None:
    # Ties on created_at (several rows per instant) are where keyset pagination goes wrong.
    specs = [{"created_at": BASE + timedelta(seconds=i // 3), "workspace": "acme"} for i in range(23)]
    specs += [{"created_at": BASE + timedelta(seconds=i), "workspace": "globex"} for i in range(5)]
    seed(pg_database, specs)
    expected = [
        r[0]
        for r in rows(
            pg_database, "SELECT id FROM audit_log WHERE workspace = 'acme' ORDER BY created_at DESC, id DESC"
        )
    ]

    async def walk(log: AuditLog) -> list[list[int]]:
        pages: list[list[int]] = []
        cursor: str | None = None
        while True:
            page, cursor = await log.query(workspace="acme", limit=5, cursor=cursor)
            pages.append([r.id for r in page])
            if cursor is None:
                return pages

    pages = run(lambda: with_log(pg_database, walk))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == expected

    # An exact multiple of the page size ends without an empty extra page.
    first, cursor = query(pg_database, workspace="globex", limit=5)
    assert len(first) == 5 and cursor is None


def test_invalid_cursors_are_rejected_with_a_clear_message(pg_database: str) -> None:
    forged = base64.urlsafe_b64encode(b"v1:abc:1").decode()
    for bad in ("garbage!", "", forged, "A" * 500, base64.urlsafe_b64encode(b"v2:1:1").decode(), "%%%"):
        with pytest.raises(ValueError, match="invalid cursor"):
            query(pg_database, cursor=bad)


# -- outages -----------------------------------------------------------------------------------------


def test_nothing_listening_is_unavailable_quickly_and_open_does_not_block() -> None:
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/postgres"

    async def body() -> list[float]:
        log = AuditLog(url, timeout_s=0.5)
        t0 = time.monotonic()
        await log.open()
        took = [time.monotonic() - t0]
        try:
            for op in (
                log.ping(),
                log.begin(request_id=uuid.uuid4(), webhook_id="m", workspace="acme", action="a", role="dev"),
                log.query(),
            ):
                t0 = time.monotonic()
                with pytest.raises(AuditUnavailable) as info:
                    await op
                took.append(time.monotonic() - t0)
                assert "s3cret-pw" not in str(info.value) and "127.0.0.1" not in str(info.value)
        finally:
            await log.close()
        return took

    took = run(body)
    assert took[0] < 1.0
    assert all(t < QUICK_S for t in took), took


def test_a_missing_table_is_unavailable_with_a_hint(unmigrated_db: str) -> None:
    async def body(log: AuditLog) -> None:
        with pytest.raises(AuditUnavailable, match="run the migrations"):
            await log.begin(request_id=uuid.uuid4(), webhook_id="m", workspace="acme", action="a", role="dev")

    run(lambda: with_log(unmigrated_db, body))


def test_a_statement_over_its_timeout_is_unavailable(pg_database: str) -> None:
    async def body(log: AuditLog) -> None:
        with psycopg.connect(pg_database) as blocker:
            blocker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")  # held until rollback
            with pytest.raises(AuditUnavailable, match="timed out"):
                await log.begin(
                    request_id=uuid.uuid4(), webhook_id="m", workspace="acme", action="a", role="dev"
                )
            blocker.rollback()
        await log.ping()  # the connection is still good

    run(lambda: with_log(pg_database, body, statement_timeout_ms=100, timeout_s=3.0))


async def until_ping_works(log: AuditLog, *, within: float = 20.0) -> float:
    t0 = time.monotonic()
    while True:
        try:
            await log.ping()
            return time.monotonic() - t0
        except AuditUnavailable:
            if time.monotonic() - t0 > within:
                raise
            await asyncio.sleep(0.05)


def test_a_stopped_server_is_unavailable_and_the_pool_recovers(fresh_pg: EmbeddedPostgres) -> None:
    url = fresh_pg.url()
    migrate(url)

    async def body(log: AuditLog) -> None:
        await log.ping()
        fresh_pg.stop()
        t0 = time.monotonic()
        with pytest.raises(AuditUnavailable):
            await log.begin(request_id=uuid.uuid4(), webhook_id="m", workspace="acme", action="a", role="dev")
        with pytest.raises(AuditUnavailable):
            await log.ping()
        assert time.monotonic() - t0 < 2 * QUICK_S
        fresh_pg.start()
        await until_ping_works(log)
        row_id = await log.begin(
            request_id=uuid.uuid4(), webhook_id="m", workspace="acme", action="a", role="dev"
        )
        await log.complete(
            row_id, status="ok", delivery_status="delivered", http_status=200, attempts=1, latency_ms=1.0
        )

    run(lambda: with_log(url, body, timeout_s=1.0))
    assert rows(url, "SELECT count(*) FROM audit_log WHERE status = 'ok'") == [(1,)]


def test_a_crashed_and_restarted_server_is_reconnected_to(fresh_pg: EmbeddedPostgres) -> None:
    url = fresh_pg.url()
    migrate(url)

    async def body(log: AuditLog) -> None:
        # Several idle connections, all of which die with the server.
        await asyncio.gather(*(log.ping() for _ in range(4)))
        fresh_pg.kill()
        fresh_pg.start()
        # Dead pooled connections are weeded out by the pre-ping, not reported as an outage.
        await log.ping()

    run(lambda: with_log(url, body, min_size=4, timeout_s=2.0))


def test_a_hung_server_is_unavailable_within_the_timeout(fresh_pg: EmbeddedPostgres) -> None:
    url = fresh_pg.url()
    migrate(url)

    async def body(log: AuditLog) -> float:
        await log.ping()
        fresh_pg.pause()
        try:
            t0 = time.monotonic()
            with pytest.raises(AuditUnavailable, match=r"within 0\.5 s"):
                await log.ping()
            took = time.monotonic() - t0
        finally:
            fresh_pg.resume()
        await until_ping_works(log)
        return took

    took = run(lambda: with_log(url, body, timeout_s=0.5))
    assert took < QUICK_S


def test_using_a_log_that_was_never_opened_is_a_programming_error() -> None:
    log = AuditLog("postgresql://postgres@127.0.0.1:1/postgres")
    with pytest.raises(RuntimeError, match="open"):
        run(log.ping)


# -- URLs --------------------------------------------------------------------------------------------


def test_urls_are_converted_for_sqlalchemy_and_back() -> None:
    from service.audit import libpq_url, sqlalchemy_url

    assert sqlalchemy_url("postgresql://u:p%40ss@h:5432/db") == "postgresql+psycopg://u:p%40ss@h:5432/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert libpq_url("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ValueError, match="postgresql://"):
        sqlalchemy_url("mysql://u@h/db")


def test_migrate_takes_a_password_with_url_escapes(pg_server: EmbeddedPostgres) -> None:
    # '%' in a URL would trip configparser interpolation if the URL went through alembic's ini options.
    suffix = uuid.uuid4().hex[:10]
    role, db, password = f"r_{suffix}", f"d_{suffix}", "p%w@rd:/x"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                psycopg.sql.Identifier(role), psycopg.sql.Literal(password)
            )
        )
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                psycopg.sql.Identifier(db), psycopg.sql.Identifier(role)
            )
        )
    try:
        url = f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:{pg_server.port}/{db}"
        migrate(url)
        assert current_revision(url) == "0001"
    finally:
        pg_server.drop_database(db)
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))
