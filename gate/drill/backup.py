"""Backups: ``pg_dump -Fc`` of one exported snapshot, and a manifest of what that snapshot held.

A backup is ``BACKUPS/YYYY-MM-DD/<db>-<UTC>.dump`` plus ``<db>-<UTC>.manifest.json`` beside it
(``relay-gate/backup-manifest@1``): SHA-256 and size of the dump, pg_dump and server versions, and per
table a row count and a content digest computed *in the same snapshot as the dump*. A REPEATABLE READ
transaction exports its snapshot (``pg_export_snapshot()``), ``pg_dump --snapshot`` dumps exactly it
while that transaction stays open, and the counts and digests come from connections importing the same
snapshot: rows committed during the backup are in neither, so the manifest describes the dump exactly.
A passing drill adds ``<db>-<UTC>.verified.json`` (retention never removes the newest verified backup).

The counts and digests are computed inside PostgreSQL, per chunk (gate/drill/fingerprint.py). Files are
written atomically (temp file, fsync, rename, fsync of the directory): a crash or a full disk leaves a
complete backup or none, never a partial one. Formats and rules: docs/drill.md.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from gate import __version__
from gate.drill.fingerprint import (
    PgConn,
    TablePlan,
    connect,
    fingerprint,
    first_line,
    list_tables,
    plan_chunks,
)
from gate.drill.layout import (
    MANIFEST_SCHEMA,
    VERIFIED_SCHEMA,
    Backup,
)
from gate.errors import InfrastructureError
from gate.stack.postgres.tools import error_line, find_tool, no_space

# While pg_dump runs, its compression keeps a core busy: the digests take the others (measured: with
# every core hashing, the dump slows down by more than the digests gain).
BACKUP_JOBS = max(1, min(4, (os.cpu_count() or 1) - 1))
LOCK_WAIT = "120s"  # pg_dump and our locks give up on a table that a long migration holds


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
