"""The audit log: one row per execute, written before the webhook goes out and completed after.

Runtime access is psycopg 3 (async) over a ``psycopg_pool.AsyncConnectionPool``; there is no ORM.
Every operation is bounded by ``timeout_s`` and turns any database failure into
:class:`AuditUnavailable`, so the app can answer 503 instead of hanging or leaking a driver error
(whose text could name hosts). The schema is owned by the Alembic migrations in
``service/migrations``; :func:`migrate` / :func:`downgrade` run them programmatically.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")
Status = Literal["pending", "ok", "error"]
STATUSES: frozenset[str] = frozenset({"pending", "ok", "error"})
MAX_LIMIT = 500
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_COLUMNS = (
    "id, request_id, workspace, action, role, status, delivery_status, http_status, attempts, "
    "latency_ms, webhook_id, created_at, completed_at"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_RE = re.compile(r"^v1:(-?\d{1,20}):(\d{1,19})$")


class AuditUnavailable(Exception):
    """The audit database could not be reached, or a statement failed or timed out.

    The message is short and never carries the database URL or password.
    """


@dataclass
class AuditRecord:
    id: int
    request_id: uuid.UUID
    workspace: str
    action: str
    role: str
    status: str
    delivery_status: str
    http_status: int | None
    attempts: int
    latency_ms: float | None
    webhook_id: str
    created_at: datetime
    completed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: UUID as text, timestamps as ISO 8601 with offset."""
        out = asdict(self)
        out["request_id"] = str(self.request_id)
        out["created_at"] = self.created_at.isoformat()
        out["completed_at"] = self.completed_at.isoformat() if self.completed_at else None
        return out


def libpq_url(database_url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy style) back to a URL libpq understands."""
    for prefix in ("postgresql+psycopg://", "postgres+psycopg://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url[len(prefix) :]
    return database_url


def sqlalchemy_url(database_url: str) -> str:
    """``postgresql://`` / ``postgres://`` to SQLAlchemy's psycopg 3 driver URL."""
    url = libpq_url(database_url)
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgresql:// or postgres://")


# -- cursors -----------------------------------------------------------------------------------------


def _encode_cursor(created_at: datetime, row_id: int) -> str:
    # Integer microseconds since the epoch: exact (timestamptz has microsecond precision) and
    # free of time zone parsing.
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"v1:{micros}:{row_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    bad = ValueError("invalid cursor: pass back the next_cursor value of a previous page unchanged")
    if not cursor or len(cursor) > 64:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    m = _CURSOR_RE.match(raw)
    if m is None:
        raise bad
    try:
        return _EPOCH + timedelta(microseconds=int(m.group(1))), int(m.group(2))
    except OverflowError:
        raise bad from None


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (for example 2025-10-07T12:00:00Z)")
    return value


def _unavailable(what: str, exc: BaseException) -> AuditUnavailable:
    """A short, URL-free message: SQLSTATE and class name say enough to act on."""
    if isinstance(exc, pg_errors.UndefinedTable):
        return AuditUnavailable(f"{what}: the audit_log table is missing (run the migrations)")
    if isinstance(exc, pg_errors.QueryCanceled):
        return AuditUnavailable(f"{what}: the statement timed out")
    code = getattr(exc, "sqlstate", None)
    return AuditUnavailable(
        f"{what}: audit database unavailable ({type(exc).__name__}{f' {code}' if code else ''})"
    )


# -- the log -----------------------------------------------------------------------------------------


class AuditLog:
    """Async audit log over a connection pool. ``open()`` never waits for the database."""

    def __init__(
        self,
        database_url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout_s: float = 2.0,
        statement_timeout_ms: int = 2000,
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError("need 0 <= min_size <= max_size and max_size >= 1")
        if timeout_s <= 0 or statement_timeout_ms <= 0:
            raise ValueError("timeout_s and statement_timeout_ms must be positive")
        self._url = libpq_url(database_url)
        self._min_size = min_size
        self._max_size = max_size
        self._timeout_s = timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._pool: AsyncConnectionPool | None = None
        # Operations that outlived their deadline: cancelled, still unwinding (see _run).
        self._stragglers: set[asyncio.Task[Any]] = set()

    async def open(self) -> None:
        """Start the pool in the background: a database that is down now is not an error now."""
        if self._pool is not None:
            return
        self._pool = AsyncConnectionPool(
            self._url,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._timeout_s,
            # The pool backs off 1, 2, 4... s between reconnection attempts until this runs out; after
            # that a new request starts a fresh attempt at once. Short, so an outage heals quickly.
            reconnect_timeout=max(2.0, self._timeout_s),
            name="audit",
            open=False,
            kwargs={
                "autocommit": True,  # every operation is one statement
                "connect_timeout": max(2, math.ceil(self._timeout_s)),  # libpq's minimum is 2 s
                "options": f"-c statement_timeout={self._statement_timeout_ms}",
                "application_name": "relay-audit",
            },
        )
        await self._pool.open(wait=False)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if self._stragglers:
            # A second cancel makes psycopg drop the connection instead of waiting on the server.
            for task in self._stragglers:
                task.cancel()
            await asyncio.wait(self._stragglers, timeout=1.0)
        if pool is not None:
            await pool.close(timeout=max(1.0, self._timeout_s))

    async def __aenter__(self) -> AuditLog:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- operations --------------------------------------------------------------------------------
    async def ping(self) -> None:
        """SELECT 1 within ``timeout_s``; raises :class:`AuditUnavailable` otherwise."""

        async def op(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute("SELECT 1")

        await self._run("ping", op)

    async def begin(
        self, *, request_id: uuid.UUID, webhook_id: str, workspace: str, action: str, role: str
    ) -> int:
        """Insert the 'pending' row for a delivery about to happen; returns its id."""

        async def op(conn: psycopg.AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "INSERT INTO audit_log"
                " (request_id, webhook_id, workspace, action, role, status, delivery_status)"
                " VALUES (%s, %s, %s, %s, %s, 'pending', 'pending') RETURNING id",
                (request_id, webhook_id, workspace, action, role),
            )
            row = await cur.fetchone()
            assert row is not None  # INSERT ... RETURNING always returns the row
            return int(row[0])

        return await self._run("audit begin", op)

    async def complete(
        self,
        row_id: int,
        *,
        status: Literal["ok", "error"],
        delivery_status: str,
        http_status: int | None,
        attempts: int,
        latency_ms: float,
    ) -> None:
        """Record the outcome on the row ``begin`` returned. A completed row is never rewritten."""
        if status not in ("ok", "error"):
            raise ValueError("status must be 'ok' or 'error'")
        if attempts < 0:
            raise ValueError("attempts must not be negative")

        async def op(conn: psycopg.AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "UPDATE audit_log SET status = %s, delivery_status = %s, http_status = %s, attempts = %s,"
                " latency_ms = %s, completed_at = now() WHERE id = %s AND status = 'pending'",
                (status, delivery_status, http_status, attempts, latency_ms, row_id),
            )
            return cur.rowcount

        if await self._run("audit complete", op) != 1:
            raise LookupError(f"audit row {row_id} does not exist or is already complete")

    async def query(
        self,
        *,
        status: str | None = None,
        workspace: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[AuditRecord], str | None]:
        """Newest first; ``since`` inclusive, ``until`` exclusive. Returns (page, next cursor or None).

        Bad arguments (unknown status, naive datetimes, limit outside 1..500, a cursor we did not
        issue) raise ValueError before the database is touched.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        # Only fixed SQL fragments are composed; every value travels as a parameter.
        where: list[sql.Composable] = []
        params: list[Any] = []
        for column, value in (("status", status), ("workspace", workspace), ("action", action)):
            if value is not None:
                where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if (start := _aware("since", since)) is not None:
            where.append(sql.SQL("created_at >= %s"))
            params.append(start)
        if (end := _aware("until", until)) is not None:
            where.append(sql.SQL("created_at < %s"))
            params.append(end)
        if cursor is not None:
            # Keyset pagination: the row comparison walks the (created_at DESC, id DESC) index.
            where.append(sql.SQL("(created_at, id) < (%s, %s)"))
            params.extend(_decode_cursor(cursor))
        query = sql.SQL("SELECT {} FROM audit_log{} ORDER BY created_at DESC, id DESC LIMIT %s").format(
            sql.SQL(_COLUMNS),
            sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        )
        params.append(limit + 1)  # one more than asked tells us whether another page exists

        async def op(conn: psycopg.AsyncConnection[Any]) -> list[AuditRecord]:
            async with conn.cursor(row_factory=class_row(AuditRecord)) as cur:
                await cur.execute(query, params)
                return await cur.fetchall()

        rows = await self._run("audit query", op)
        if len(rows) <= limit:
            return rows, None
        page = rows[:limit]
        return page, _encode_cursor(page[-1].created_at, page[-1].id)

    # -- plumbing ----------------------------------------------------------------------------------
    async def _run(self, what: str, op: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run ``op`` on a live pooled connection within ``timeout_s``, failures as AuditUnavailable.

        The deadline is enforced outside the operation: a cancelled psycopg query first tries to
        cancel on the server, which against a hung server takes seconds, and the caller must not
        wait for that. The cancelled task finishes in the background (``_stragglers``).
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError("AuditLog.open() has not been called")
        task = asyncio.create_task(self._with_connection(pool, op))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout_s)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise AuditUnavailable(f"{what}: no answer from the audit database within {self._timeout_s:g} s")
        try:
            return task.result()
        except (pg_errors.IntegrityError, pg_errors.DataError) as exc:
            # The caller's values, not an outage (a duplicate request_id, a NUL byte in a string).
            raise ValueError(f"{what}: the database rejected the values ({type(exc).__name__})") from exc
        except psycopg.Error as exc:  # includes psycopg_pool's PoolTimeout / PoolClosed
            raise _unavailable(what, exc) from exc
        except OSError as exc:
            raise _unavailable(what, exc) from exc

    async def _with_connection(
        self, pool: AsyncConnectionPool, op: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
    ) -> T:
        while True:
            conn = await pool.getconn()
            try:
                # Pre-ping: idle connections die silently when the server restarts. A dead one is
                # handed back (the pool discards and replaces it) and we take the next at once;
                # the pool's own check= would back off a second or more per dead connection.
                await conn.execute("")
            except psycopg.OperationalError:
                await pool.putconn(conn)
                continue
            try:
                return await op(conn)
            finally:
                await pool.putconn(conn)

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._stragglers.add(task)
        task.add_done_callback(_reap)
        task.add_done_callback(self._stragglers.discard)


def _reap(task: asyncio.Task[Any]) -> None:
    # Retrieve the outcome so asyncio does not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()


# -- migrations --------------------------------------------------------------------------------------


def _alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Handed over as an attribute, not an ini option: no configparser '%' interpolation of
    # percent-encoded passwords, and the secret is never written anywhere.
    cfg.attributes["database_url"] = database_url
    return cfg


def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the audit schema to ``revision`` (Alembic, programmatically; works from any cwd)."""
    from alembic import command

    command.upgrade(_alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(_alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None when no migration has run."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revisions() -> tuple[str, ...]:
    """The head revision(s) of the migration scripts (one, unless someone branched them)."""
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(_alembic_config("postgresql://unused")).get_heads())
