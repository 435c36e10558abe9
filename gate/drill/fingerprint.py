"""Fingerprints of a database, computed by the server: row counts and content digests per table.

Shared by the backup (the manifest, in the dump's exported snapshot) and the drill (the restored
database, in the manifest's chunk plan): the connection (:class:`PgConn`, parsed once, the password
kept out of any argv), the tables (:func:`list_tables`), their chunks (:func:`plan_chunks`) and the
digests (:func:`fingerprint`). Digests are computed inside PostgreSQL (no row is streamed into
Python), per chunk of at most :data:`CHUNK_ROWS` rows of an integer primary key, so that server memory
stays bounded, a mismatch is located, and chunks are hashed in parallel. Formats: docs/drill.md.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gate.errors import InfrastructureError, UsageError

CHUNK_ROWS = 250_000  # string_agg holds 32 bytes per row: 8 MB per chunk, far from its 1 GB limit
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))  # connections hashing a restore
# Row text depends on these settings (timestamptz in the session time zone, money in lc_monetary...):
# pinned on both sides, so a restore on a server configured differently still digests the same.
_PINNED = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
           "extra_float_digits": "1", "bytea_output": "hex", "lc_monetary": "C"}  # fmt: skip
_INTEGER_TYPES = (20, 21, 23)  # int8, int2, int4 oids: keys we can split into ranges


# -- connections ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgConn:
    """A parsed database URL. The password goes to psycopg in-process and to pg tools in their
    environment (PGPASSWORD), never into an argv where ``ps`` would show it."""

    params: dict[str, str] = field(repr=False)

    @classmethod
    def parse(cls, url: str) -> PgConn:
        from service.audit import libpq_url

        try:
            params = {k: str(v) for k, v in conninfo_to_dict(libpq_url(url)).items()}
        except psycopg.Error:
            # psycopg's message quotes the string, password included: say what is expected instead
            raise UsageError(
                "the database URL is not valid: expected postgresql://user:password@host:port/dbname"
            ) from None
        if not params.get("dbname"):
            raise UsageError("the database URL names no database: expected postgresql://…/dbname")
        return cls(params)

    @property
    def dbname(self) -> str:
        return self.params["dbname"]

    @property
    def password(self) -> str | None:
        return self.params.get("password")

    @property
    def host(self) -> str:
        return self.params.get("host", "localhost")

    @property
    def where(self) -> str:
        return f"{self.host}:{self.params.get('port', '5432')}/{self.dbname}"

    @property
    def is_local(self) -> bool:
        return self.host in ("localhost", "127.0.0.1", "::1") or self.host.startswith("/")

    @property
    def dsn(self) -> str:
        return make_conninfo(**self.params)

    @property
    def argv_dsn(self) -> str:
        return make_conninfo(**{k: v for k, v in self.params.items() if k != "password"})

    def with_dbname(self, name: str) -> PgConn:
        return PgConn({**self.params, "dbname": name})

    def describe(self) -> dict[str, Any]:
        return {"host": self.host, "port": int(self.params.get("port", 5432)), "database": self.dbname,
                "user": self.params.get("user")}  # fmt: skip

    def child_env(self, app: str) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        env["PGAPPNAME"] = app
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        env["LC_ALL"] = "C"  # messages we recognise ("No space left on device") in English
        return env


def connect(c: PgConn, app: str, *, role: str = "database", timeout: int = 10) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(c.dsn, autocommit=True, connect_timeout=timeout, application_name=app)
    except psycopg.OperationalError as exc:
        why = " ".join(str(exc).split())[:240]
        raise InfrastructureError(
            f"{role} {c.where} is unreachable ({why}); check the URL and the server"
        ) from None


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


# -- fingerprints: counts and digests computed by the server ---------------------------------------


@dataclass(frozen=True)
class KeyCol:
    name: str
    collatable: bool  # ordered COLLATE "C": a restore on a server with another locale sorts the same
    integer: bool


@dataclass(frozen=True)
class TablePlan:
    """A table and how it is hashed: its key (the order) and chunk bounds ``[lo, hi)`` on that key."""

    schema: str
    name: str
    key: tuple[KeyCol, ...] = ()
    bounds: tuple[tuple[int | None, int | None], ...] = ((None, None),)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass(frozen=True)
class TablePrint:
    plan: TablePlan
    chunks: tuple[tuple[int, str], ...]  # (rows, digest) per chunk
    error: str | None = None

    @property
    def rows(self) -> int:
        return sum(r for r, _ in self.chunks)

    @property
    def digest(self) -> str:
        return hashlib.md5("".join(d for _, d in self.chunks).encode(), usedforsecurity=False).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.plan.schema, "table": self.plan.name, "key": [k.name for k in self.plan.key],
            "rows": self.rows, "digest": self.digest,
            "chunks": [{"from": lo, "to": hi, "rows": r, "digest": d}
                       for (lo, hi), (r, d) in zip(self.plan.bounds, self.chunks, strict=True)],
        }  # fmt: skip


_TABLES_SQL = """
SELECT n.nspname, c.relname, k.names, k.collatable, k.types
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT array_agg(a.attname::text ORDER BY u.ord) AS names,
           array_agg(a.attcollation <> 0 ORDER BY u.ord) AS collatable,
           array_agg(a.atttypid::int ORDER BY u.ord) AS types
    FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS u(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.attnum
    WHERE i.indrelid = c.oid AND i.indisprimary) k ON true
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  -- tables of extensions are recreated by CREATE EXTENSION, not restored from the dump
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


def list_tables(conn: psycopg.Connection[Any]) -> list[TablePlan]:
    """Every ordinary table of the database (not catalogs, temp or extension tables), one chunk each."""
    out = []
    for schema, name, names, coll, types in conn.execute(_TABLES_SQL).fetchall():
        cols = zip(names or [], coll or [], types or [], strict=True)
        key = tuple(KeyCol(n, bool(c), t in _INTEGER_TYPES) for n, c, t in cols)
        out.append(TablePlan(schema, name, key))
    return out


def plan_chunks(conn: psycopg.Connection[Any], plan: TablePlan, *, chunk_rows: int = 0) -> TablePlan:
    """Split a table with a one-column integer key into ranges of about ``chunk_rows`` rows.

    The bounds are recorded in the manifest and reused on the restore, so any split is correct; even
    ranges between min and max are good enough and cost one index lookup each.
    """
    if len(plan.key) != 1 or not plan.key[0].integer:
        return plan
    chunk_rows = chunk_rows or CHUNK_ROWS
    col = sql.Identifier(plan.key[0].name)
    q = sql.SQL("SELECT count(*), min({c}), max({c}) FROM {t}").format(c=col, t=plan.ident)
    count, lo, hi = conn.execute(q).fetchone()  # type: ignore[misc]
    n = -(-int(count) // chunk_rows)
    if n <= 1:
        return plan
    cuts = [lo + (hi - lo + 1) * i // n for i in range(1, n)]
    edges: list[int | None] = [None, *cuts, None]  # open ends: rows outside [min, max] still count
    return replace(plan, bounds=tuple(itertools.pairwise(edges)))


def _chunk_query(plan: TablePlan, lo: int | None, hi: int | None) -> sql.Composed:
    row_md5 = sql.SQL("md5(ROW(r.*)::text)")  # r.* is always the alias, whatever the column names
    if not plan.key:  # no primary key: the multiset of row hashes, sorted, is the canonical order
        return sql.SQL(
            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h COLLATE \"C\")), md5(''))"
            " FROM (SELECT {} AS h FROM {} AS r) s"
        ).format(row_md5, plan.ident)
    order = sql.SQL(", ").join(
        sql.SQL("r.{}{}").format(sql.Identifier(k.name), sql.SQL(' COLLATE "C"' if k.collatable else ""))
        for k in plan.key
    )
    where: list[sql.Composable] = []
    if lo is not None:
        where.append(sql.SQL("r.{} >= {}").format(sql.Identifier(plan.key[0].name), sql.Literal(lo)))
    if hi is not None:
        where.append(sql.SQL("r.{} < {}").format(sql.Identifier(plan.key[0].name), sql.Literal(hi)))
    cond = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    return sql.SQL(
        "SELECT count(*), coalesce(md5(string_agg({}, '' ORDER BY {})), md5('')) FROM {} AS r{}"
    ).format(row_md5, order, plan.ident, cond)


def fingerprint(
    src: PgConn, plans: list[TablePlan], *, snapshot: str | None = None, jobs: int = DEFAULT_JOBS,
    tolerate_errors: bool = False,
) -> list[TablePrint]:  # fmt: skip
    """Count and digest every chunk of ``plans`` on ``jobs`` connections (in ``snapshot`` if given).

    With ``tolerate_errors`` a failing table (a key column missing from a restore) is reported in its
    :class:`TablePrint` instead of raising.
    """
    items = [(ti, ci) for ti, p in enumerate(plans) for ci in range(len(p.bounds))]
    results: dict[tuple[int, int], tuple[int, str] | str] = {}
    lock, pending, stop = threading.Lock(), iter(items), threading.Event()

    def worker() -> None:
        with connect(src, "relay-gate fingerprint") as conn:
            if snapshot is not None:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            for name, value in _PINNED.items():
                conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            while not stop.is_set():
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                plan = plans[item[0]]
                try:
                    count, digest = conn.execute(_chunk_query(plan, *plan.bounds[item[1]])).fetchone()  # type: ignore[misc]
                    results[item] = (int(count), str(digest))
                except psycopg.Error as exc:
                    if not tolerate_errors or snapshot is not None:
                        stop.set()
                        why = first_line(exc)
                        raise InfrastructureError(f"counting {plan.qualified} failed: {why}") from None
                    results[item] = first_line(exc)

    workers = max(1, min(jobs, len(items)))
    with ThreadPoolExecutor(workers, thread_name_prefix="fingerprint") as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    out = []
    for ti, plan in enumerate(plans):
        got = [results[(ti, ci)] for ci in range(len(plan.bounds))]
        errors = [g for g in got if isinstance(g, str)]
        chunks = tuple(g for g in got if not isinstance(g, str))
        out.append(TablePrint(plan, chunks if not errors else (), errors[0] if errors else None))
    return out
