"""Backups: ``pg_dump -Fc`` of one exported snapshot, and a manifest of what that snapshot held.

A backup is ``BACKUPS/YYYY-MM-DD/<db>-<UTC>.dump`` plus ``<db>-<UTC>.manifest.json`` beside it
(``relay-gate/backup-manifest@1``): SHA-256 and size of the dump, pg_dump and server versions, and per
table a row count and a content digest computed *in the same snapshot as the dump*. A REPEATABLE READ
transaction exports its snapshot (``pg_export_snapshot()``), ``pg_dump --snapshot`` dumps exactly it
while that transaction stays open, and the counts and digests come from connections importing the same
snapshot: rows committed during the backup are in neither, so the manifest describes the dump exactly.
A passing drill adds ``<db>-<UTC>.verified.json`` (retention never removes the newest verified backup).

Digests are computed inside PostgreSQL (no row is streamed into Python), per chunk of at most
:data:`CHUNK_ROWS` rows of an integer primary key, so that server memory stays bounded, a mismatch is
located, and chunks are hashed in parallel. Files are written atomically (temp file, fsync, rename,
fsync of the directory): a crash or a full disk leaves a complete backup or none, never a partial one.
Formats and rules: docs/drill.md.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gate import __version__
from gate.errors import CriterionFailed, InfrastructureError, UsageError

MANIFEST_SCHEMA = "relay-gate/backup-manifest@1"
VERIFIED_SCHEMA = "relay-gate/backup-verified@1"
CHUNK_ROWS = 250_000  # string_agg holds 32 bytes per row: 8 MB per chunk, far from its 1 GB limit
DEFAULT_JOBS = max(1, min(4, os.cpu_count() or 1))  # connections hashing a restore
# While pg_dump runs, its compression keeps a core busy: the digests take the others (measured: with
# every core hashing, the dump slows down by more than the digests gain).
BACKUP_JOBS = max(1, min(4, (os.cpu_count() or 1) - 1))
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# <db>-<YYYYMMDDTHHMMSSZ>[-<n>]: n tells apart backups taken within the same second
STEM_RE = re.compile(r"^(?P<db>.+)-(?P<ts>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?$")
LOCK_WAIT = "120s"  # pg_dump and our locks give up on a table that a long migration holds
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


# -- pg_dump / pg_restore ---------------------------------------------------------------------------


def _version_of(tool: Path) -> tuple[int, str]:
    """``(16, "16.2")`` from ``pg_dump --version`` ("pg_dump (PostgreSQL) 16.2")."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise InfrastructureError(f"{tool} cannot run ({exc.strerror}): pass --pg-bin DIR") from None
    m = re.search(r"\)\s*(\d+)(?:\.(\d+))?", out.stdout)
    if out.returncode != 0 or m is None:
        raise InfrastructureError(f"{tool} --version did not report a version: pass --pg-bin DIR")
    return int(m.group(1)), f"{m.group(1)}.{m.group(2) or 0}"


def find_tool(name: str, *, at_least: int, pg_bin: Path | None) -> tuple[Path, str]:
    """The first ``name`` (pg_dump, pg_restore) of major version ``at_least`` or newer.

    Only ``pg_bin`` when given; else ``RELAY_GATE_PG_BIN``, pgserver's bundled binaries, ``PATH``.
    pg_dump cannot dump a newer server and an older pg_restore cannot read a newer archive: that is
    an error here, before anything is written.
    """
    candidates: list[Path] = []
    if pg_bin is not None:
        candidates.append(Path(pg_bin) / name)
    else:
        if os.environ.get("RELAY_GATE_PG_BIN"):
            candidates.append(Path(os.environ["RELAY_GATE_PG_BIN"]) / name)
        with contextlib.suppress(Exception):
            from gate.pg_server import _source_bin_dir

            candidates.append(_source_bin_dir() / name)
        if on_path := shutil.which(name):
            candidates.append(Path(on_path))
    found = []
    for path in dict.fromkeys(candidates):
        if os.access(path, os.X_OK):
            major, version = _version_of(path)
            if major >= at_least:
                return path, version
            found.append(f"{path} ({version})")
    if not found:
        where = f"in {pg_bin}" if pg_bin else "(RELAY_GATE_PG_BIN, pgserver's binaries, PATH)"
        raise InfrastructureError(f"no {name} found {where}: install PostgreSQL client tools, or --pg-bin")
    raise InfrastructureError(
        f"version mismatch: {name} must be PostgreSQL {at_least} or newer to read this, found only "
        f"{', '.join(found)}; install PostgreSQL {at_least} client tools and pass --pg-bin DIR"
    )


def no_space(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text


def error_line(stderr: str) -> str:
    """The line of a pg tool's stderr that says what went wrong (the first ``error:``, else the last)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = next((x for x in lines if "error:" in x or "FATAL" in x), lines[-1] if lines else "no message")
    return line[:300]


# -- files ------------------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_space(path: Path) -> str:
    with contextlib.suppress(OSError):
        st = os.statvfs(path)
        return f"{st.f_bavail * st.f_frsize / 1e6:.1f} MB free on {path}: free space or use another --dir"
    return f"free space on {path} or use another --dir"


def _disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """``path`` holds the old content or all of the new one, even after a crash or a full disk."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if _disk_full(exc):
            raise InfrastructureError(f"disk full: cannot write {path}; {free_space(path.parent)}") from None
        raise


def sha256_of(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _make_dirs(path: Path) -> None:
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in reversed(missing):  # a new directory entry survives a crash only once its parent is synced
        fsync_dir(p.parent)


# -- backups on disk --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    """One backup: the dump and its manifest (and the verified marker a passing drill writes)."""

    stem: str
    day: str
    dump: Path
    manifest_path: Path

    @property
    def stamp(self) -> tuple[str, int]:
        m = STEM_RE.match(self.stem)
        return (m.group("ts"), int(m.group("n") or 1)) if m else ("", 0)

    @property
    def verified_path(self) -> Path:
        return self.manifest_path.with_name(f"{self.stem}.verified.json")

    @property
    def verified(self) -> bool:
        return self.verified_path.is_file()

    def manifest(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise CriterionFailed(f"manifest {self.manifest_path} is unreadable ({exc})") from None
        if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA:
            raise CriterionFailed(f"{self.manifest_path} is not a {MANIFEST_SCHEMA} document")
        missing = [k for k in ("database", "dump", "taken_at", "tables", "versions") if doc.get(k) is None]
        if missing:
            raise CriterionFailed(f"manifest {self.manifest_path} lacks {', '.join(missing)}")
        return doc


def list_backups(backup_dir: Path) -> list[Backup]:
    """Every backup (a manifest in a ``YYYY-MM-DD`` folder), oldest first; one whose dump is gone is
    listed too, so that the drill can say so."""
    root = Path(backup_dir)
    out = []
    for day_dir in root.iterdir() if root.is_dir() else []:
        if day_dir.is_dir() and DAY_RE.match(day_dir.name):
            for manifest in day_dir.glob("*.manifest.json"):
                stem = manifest.name.removesuffix(".manifest.json")
                if STEM_RE.match(stem):
                    out.append(Backup(stem, day_dir.name, day_dir / f"{stem}.dump", manifest))
    return sorted(out, key=lambda b: b.stamp)


def mark_verified(backup: Backup, *, run_id: str, sha256: str, drill_json: Path | None) -> Path:
    """Record that a drill restored this backup and found it matching: retention keeps it."""
    write_json_atomic(backup.verified_path, {
        "schema": VERIFIED_SCHEMA, "backup": backup.dump.name, "sha256": sha256,
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "drill_run_id": run_id, "drill_json": str(drill_json) if drill_json else None,
    })  # fmt: skip
    return backup.verified_path


# -- taking a backup --------------------------------------------------------------------------------


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds").replace("+00:00", "Z")


def take_backup(
    database_url: str, backup_dir: Path, *, pg_bin: Path | None = None, jobs: int = BACKUP_JOBS,
    compress: int | None = None, on_snapshot: Callable[[str], None] | None = None,
) -> Backup:  # fmt: skip
    """Dump ``database_url`` into ``backup_dir`` with its manifest; return the new backup.

    ``on_snapshot(snapshot_id)`` runs once the snapshot is exported, before anything is read
    (instrumentation: tests commit rows there and see that neither the dump nor the manifest has them).
    Raises :class:`InfrastructureError` (exit 5) for an unreachable source, missing or too old tools,
    a full disk or a failed pg_dump, leaving nothing behind.
    """
    src = PgConn.parse(database_url)
    started = time.monotonic()
    with connect(src, "relay-gate backup", role="source database") as conn:
        try:
            facts = {k: str(conn.execute(f"SHOW {k}").fetchone()[0]) for k in  # type: ignore[index]
                     ("server_version_num", "server_version", "server_encoding")}  # fmt: skip
            server_num = int(facts["server_version_num"])
            pg_dump, dump_version = find_tool("pg_dump", at_least=server_num // 10000, pg_bin=pg_bin)
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
            taken = datetime.now(UTC)
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_WAIT)))
            tables = list_tables(conn)
            # pg_dump's own locks, taken first: no DDL changes a table between the dump and the counts
            for t in tables:
                conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(t.ident))
            if on_snapshot is not None:
                on_snapshot(snapshot)
            manifest = {
                "schema": MANIFEST_SCHEMA, "database": src.dbname, "source": src.describe(), "dump": None,
                "versions": {"pg_dump": dump_version, "server": facts["server_version"].split()[0],
                             "server_num": server_num, "relay-gate": __version__},
                "server_encoding": facts["server_encoding"],
                "snapshot": {"id": snapshot, "isolation": "repeatable read read only"},
                "taken_at": _iso(taken),
            }  # fmt: skip
            day_dir = Path(backup_dir) / taken.strftime("%Y-%m-%d")
            argv = [str(pg_dump), "--format=custom", f"--snapshot={snapshot}", "--no-sync",
                    f"--lock-wait-timeout={LOCK_WAIT}"]  # fmt: skip
            if compress is not None:
                argv.append(f"--compress={compress}")
            backup = _write_backup(
                src, conn, tables, argv, manifest, day_dir, taken, jobs=jobs, started=started
            )
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise InfrastructureError(f"backing up {src.where} failed: {first_line(exc)}") from None
    return backup


def _write_backup(
    src: PgConn, conn: psycopg.Connection[Any], tables: list[TablePlan], argv: list[str],
    manifest: dict[str, Any], day_dir: Path, taken: datetime, *, jobs: int, started: float,
) -> Backup:  # fmt: skip
    """pg_dump into a temp file while the same snapshot is hashed, then dump and manifest, atomically."""
    try:
        _make_dirs(day_dir)
    except OSError as exc:
        raise InfrastructureError(f"cannot create {day_dir} ({exc.strerror}): check --dir") from None
    stem = base = f"{re.sub(r'[^A-Za-z0-9_.]+', '_', src.dbname)}-{taken.strftime('%Y%m%dT%H%M%SZ')}"
    n = 1
    while any((day_dir / f"{stem}{s}").exists() for s in (".dump", ".manifest.json")):
        n += 1
        stem = f"{base}-{n}"
    dump, manifest_path = day_dir / f"{stem}.dump", day_dir / f"{stem}.manifest.json"
    tmp = day_dir / f".{stem}.dump.partial"
    complete = False
    try:
        with tempfile.TemporaryFile() as errf:
            t0 = time.monotonic()
            argv = [*argv, f"--file={tmp}", f"--dbname={src.argv_dsn}"]
            proc = subprocess.Popen(argv, env=src.child_env("relay-gate pg_dump"), stdout=subprocess.DEVNULL,
                                    stderr=errf)  # fmt: skip
            try:
                # Planned and hashed while pg_dump runs, in the snapshot it reads: the work overlaps,
                # the numbers agree with the dump row for row.
                plans = [plan_chunks(conn, t) for t in tables]
                prints = fingerprint(src, plans, snapshot=manifest["snapshot"]["id"], jobs=jobs)
                fingerprint_s = time.monotonic() - t0
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            dump_s = time.monotonic() - t0
            errf.seek(0)
            stderr = errf.read().decode("utf-8", "replace")
        if rc != 0:
            if no_space(stderr):
                raise InfrastructureError(f"disk full while dumping to {day_dir}; {free_space(day_dir)}")
            raise InfrastructureError(f"pg_dump failed (exit {rc}): {error_line(stderr)}")
        with open(tmp, "rb+") as f:  # pg_dump --no-sync: one fsync, ours, before the rename
            os.fsync(f.fileno())
        sha256, size = sha256_of(tmp)
        os.replace(tmp, dump)
        fsync_dir(day_dir)
        manifest.update(
            dump={"file": dump.name, "format": "custom", "sha256": sha256, "size_bytes": size},
            finished_at=_iso(datetime.now(UTC)),
            durations_s={
                "dump": round(dump_s, 3),
                "fingerprint": round(fingerprint_s, 3),
                "total": round(time.monotonic() - started, 3),
            },
            totals={"tables": len(prints), "rows": sum(p.rows for p in prints)},
            tables=[p.to_json() for p in prints],
        )
        write_json_atomic(manifest_path, manifest)
        complete = True
    except OSError as exc:
        if _disk_full(exc):
            raise InfrastructureError(f"disk full writing the backup; {free_space(day_dir)}") from None
        raise InfrastructureError(f"cannot write the backup in {day_dir}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        if not complete:  # a dump without its manifest is not a backup: leave nothing
            dump.unlink(missing_ok=True)
    return Backup(stem, day_dir.name, dump, manifest_path)
