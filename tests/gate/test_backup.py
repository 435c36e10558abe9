"""relay-gate backup: dump and manifest from one snapshot, atomic files, versions, disk full, retention."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import gate.drill.backup as backup_mod
import gate.drill.fingerprint as fingerprint_mod
from gate.cli import main
from gate.commands.backup import plan_retention
from gate.drill.backup import sha256_of, take_backup
from gate.drill.fingerprint import PgConn
from gate.drill.layout import MANIFEST_SCHEMA, list_backups
from gate.drill.restore import DrillOptions, run_drill, seed_bulk_table
from gate.errors import InfrastructureError, UsageError
from gate.stack.postgres.server import EmbeddedPostgres
from gate.stack.postgres.tools import find_tool
from gate.stack.procs import free_port

pytestmark = pytest.mark.stack


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]  # noqa: S608
            for t in ("audit_log", "bulk_events", "alembic_version")
        }


def add_audit_rows(url: str, n: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(n):
            conn.execute(
                "INSERT INTO audit_log"
                " (request_id, webhook_id, workspace, action, role, status, delivery_status)"
                " VALUES (%s, 'wh', 'default', 'notify.send', 'dev', 'pending', 'pending')",
                (uuid.uuid4(),),
            )


@pytest.fixture
def source(pg_database: str) -> str:
    """A migrated database with audit rows and a small bulk table."""
    seed_bulk_table(pg_database, rows=3000)
    add_audit_rows(pg_database, 5)
    return pg_database


def test_backup_writes_a_dump_and_a_manifest_of_the_same_snapshot(source: str, tmp_path: Path) -> None:
    b = take_backup(source, tmp_path / "backups")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert b.dump.parent == tmp_path / "backups" / today
    assert b.dump.name.startswith(PgConn.parse(source).dbname + "-") and b.dump.suffix == ".dump"
    assert sorted(p.name for p in b.dump.parent.iterdir()) == sorted([b.dump.name, b.manifest_path.name])
    m = json.loads(b.manifest_path.read_text())
    assert m["schema"] == MANIFEST_SCHEMA and m["database"] == PgConn.parse(source).dbname
    assert (m["dump"]["sha256"], m["dump"]["size_bytes"]) == sha256_of(b.dump)
    assert m["versions"]["pg_dump"] == m["versions"]["server"] == "16.2"
    tables = {t["table"]: t for t in m["tables"]}
    assert {k: tables[k]["rows"] for k in counts(source)} == counts(source)
    assert tables["bulk_events"]["key"] == ["id"] and len(tables["bulk_events"]["digest"]) == 32
    assert m["totals"] == {"tables": 3, "rows": sum(counts(source).values())}
    assert m["snapshot"]["id"] and m["taken_at"].endswith("Z")
    # a valid custom-format archive, listing the bulk table's data
    listing = subprocess.run(
        [str(find_tool("pg_restore", at_least=16, pg_bin=None)[0]), "--list", str(b.dump)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "TABLE DATA public bulk_events" in listing
    password = PgConn.parse(source).password
    assert password and password not in b.manifest_path.read_text()


def test_rows_committed_after_the_snapshot_are_in_neither_the_dump_nor_the_manifest(
    source: str, tmp_path: Path
) -> None:
    before = counts(source)

    def meanwhile(snapshot: str) -> None:  # another client commits after the snapshot was exported
        add_audit_rows(source, 7)
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("DELETE FROM bulk_events WHERE id <= 10")
            conn.execute("UPDATE bulk_events SET payload = 'changed' WHERE id = 500")

    b = take_backup(source, tmp_path / "backups", on_snapshot=meanwhile)
    tables = {t["table"]: t["rows"] for t in b.manifest()["tables"]}
    assert tables == before  # the manifest is the snapshot's, not the live database's
    assert counts(source)["audit_log"] == before["audit_log"] + 7
    # and the dump holds exactly that snapshot: the drill's in-database counts and digests agree
    result = run_drill(DrillOptions(source, tmp_path / "backups", restore_to="same"))
    assert result.passed, result.reason


def test_a_concurrent_writer_does_not_break_the_match(source: str, tmp_path: Path) -> None:
    """Rows are inserted in a loop all through the backup; the manifest still matches the dump exactly."""
    stop, committed = threading.Event(), threading.Semaphore(0)
    inserted = [0]

    def writer() -> None:
        with psycopg.connect(source, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute(
                    "INSERT INTO bulk_events SELECT g, 'w', 'k', 'p', 0, now()"
                    " FROM generate_series(%s, %s) AS g",
                    (1_000_000 + inserted[0], 1_000_000 + inserted[0] + 49),
                )
                inserted[0] += 50
                committed.release()

    thread = threading.Thread(target=writer)
    thread.start()
    at_snapshot: list[int] = []

    def after_snapshot(_snapshot: str) -> None:
        at_snapshot.append(inserted[0])
        for _ in range(3):  # commits after the snapshot, before pg_dump and the counts start
            assert committed.acquire(timeout=10)

    try:
        b = take_backup(source, tmp_path / "backups", on_snapshot=after_snapshot)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert inserted[0] >= at_snapshot[0] + 150, "the writer did not commit during the backup"
    manifest_rows = next(t["rows"] for t in b.manifest()["tables"] if t["table"] == "bulk_events")
    assert manifest_rows < counts(source)["bulk_events"]
    result = run_drill(DrillOptions(source, tmp_path / "backups", restore_to="same"))
    assert result.passed, result.reason
    restored = next(t for t in result.doc["tables"] if t["table"] == "public.bulk_events")
    assert restored["restored"]["rows"] == manifest_rows


def test_large_tables_are_hashed_in_chunks_of_the_primary_key(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint_mod, "CHUNK_ROWS", 1000)
    b = take_backup(source, tmp_path / "backups", jobs=2)
    bulk = next(t for t in b.manifest()["tables"] if t["table"] == "bulk_events")
    assert len(bulk["chunks"]) == 3
    assert bulk["chunks"][0]["from"] is None and bulk["chunks"][-1]["to"] is None  # open ends
    assert sum(c["rows"] for c in bulk["chunks"]) == bulk["rows"] == 3000
    assert run_drill(DrillOptions(source, tmp_path / "backups", restore_to="same", verify_jobs=2)).passed


def test_digests_ignore_session_settings_and_cover_tables_without_a_key(
    pg_server: EmbeddedPostgres, pg_database: str, tmp_path: Path
) -> None:
    """Row text depends on TimeZone, DateStyle, lc_monetary... which differ between servers: pinned."""
    dbname = PgConn.parse(pg_database).dbname
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {dbname} SET TimeZone = 'Asia/Tokyo'")
        conn.execute(f"ALTER DATABASE {dbname} SET DateStyle = 'SQL, DMY'")
        conn.execute("CREATE TABLE notes (k text PRIMARY KEY, at timestamptz, price money, d interval)")
        conn.execute("INSERT INTO notes VALUES ('b', now(), 12.5, '1 day'), ('A', now(), 1, '2 hours')")
        conn.execute("CREATE TABLE loose (v text, n float8)")  # no primary key: duplicates allowed
        conn.execute("INSERT INTO loose VALUES ('x', 0.1), ('x', 0.1), (NULL, 1e300)")
    take_backup(pg_database, tmp_path / "backups")
    result = run_drill(DrillOptions(pg_database, tmp_path / "backups", restore_to="same"))
    assert result.passed, result.reason
    assert {t["table"]: t["source"]["rows"] for t in result.doc["tables"]}["public.loose"] == 3


def _fake_tool(bin_dir: Path, name: str, version: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    tool.chmod(0o755)
    return bin_dir


def test_a_pg_dump_older_than_the_server_is_refused_before_anything_is_written(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _fake_tool(tmp_path / "pg15", "pg_dump", "15.4")
    with pytest.raises(
        InfrastructureError, match=r"version mismatch: pg_dump must be PostgreSQL 16 or newer"
    ):
        take_backup(source, tmp_path / "backups", pg_bin=old)
    assert not (tmp_path / "backups").exists()
    code = main(["backup", "--database-url", source, "--dir", str(tmp_path / "b"), "--pg-bin", str(old)])
    assert code == 5
    assert "--pg-bin" in capsys.readouterr().err
    code = main(["backup", "--database-url", source, "--dir", str(tmp_path / "b"), "--pg-bin", str(tmp_path)])
    assert code == 5
    assert "no pg_dump found" in capsys.readouterr().err


def test_an_unreachable_source_is_exit_5_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://postgres:s3cret-pw-123@127.0.0.1:{free_port()}/relay"
    assert main(["backup", "--database-url", url, "--dir", str(tmp_path / "b")]) == 5
    err = capsys.readouterr().err
    assert "source database 127.0.0.1" in err and "unreachable" in err and "s3cret" not in err
    assert main(["backup", "--dir", str(tmp_path / "b"), "--database-url", "postgresql://h:1/"]) == 2


def test_the_password_is_never_in_an_argv(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_popen, real_run = subprocess.Popen, subprocess.run

    def popen(argv: list[str], **kw: Any) -> Any:
        seen.append((list(argv), kw.get("env") or {}))
        return real_popen(argv, **kw)

    def run(argv: list[str], **kw: Any) -> Any:
        seen.append((list(argv), kw.get("env") or {}))
        return real_run(argv, **kw)

    monkeypatch.setattr(backup_mod.subprocess, "Popen", popen)
    monkeypatch.setattr(backup_mod.subprocess, "run", run)
    take_backup(source, tmp_path / "backups")
    assert run_drill(DrillOptions(source, tmp_path / "backups", restore_to="same")).passed
    password = PgConn.parse(source).password
    tools = [
        (a, env) for a, env in seen if Path(a[0]).name in ("pg_dump", "pg_restore") and a[1] != "--version"
    ]
    assert {Path(a[0]).name for a, _ in tools} == {"pg_dump", "pg_restore"}
    for argv, env in tools:
        assert password and not any(password in str(arg) for arg in argv), argv
        assert env.get("PGPASSWORD") == password


def test_two_backups_in_the_same_second_get_distinct_names(source: str, tmp_path: Path) -> None:
    first, second = take_backup(source, tmp_path / "b"), take_backup(source, tmp_path / "b")
    assert first.dump != second.dump
    assert [b.dump for b in list_backups(tmp_path / "b")][-1] == second.dump  # newest last


# -- disk full, for real: a 2 MB tmpfs -------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, check=False
    )
    if res.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({res.stderr.decode().strip()}): disk full not testable for real"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_disk_fails_the_backup_cleanly(
    pg_database: str, tiny_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:  # ~6 MB of hashes gzip cannot shrink to 2 MB
        conn.execute("CREATE TABLE noise AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v"
                     " FROM generate_series(1, 120000) g")  # fmt: skip
    code = main(["backup", "--database-url", pg_database, "--dir", str(tiny_disk / "backups")])
    err = capsys.readouterr().err
    assert code == 5, err
    assert "disk full" in err and "MB free" in err and len(err.strip().splitlines()) == 1
    leftovers = [p.name for p in (tiny_disk / "backups").rglob("*") if p.is_file()]
    assert leftovers == [], f"a failed backup left {leftovers}"
    assert list_backups(tiny_disk / "backups") == []


# -- retention -------------------------------------------------------------------------------------


def fake_backup(root: Path, day: date, *, verified: bool = False, n: int = 0) -> Path:
    d = root / day.isoformat()
    d.mkdir(parents=True, exist_ok=True)
    stem = f"relay-{day.strftime('%Y%m%d')}T0900{n:02d}Z"
    (d / f"{stem}.dump").write_bytes(b"PGDMP")
    (d / f"{stem}.manifest.json").write_text(json.dumps({"schema": MANIFEST_SCHEMA}))
    if verified:
        (d / f"{stem}.verified.json").write_text("{}")
    return d / f"{stem}.dump"


TODAY = date(2026, 11, 26)


def test_retention_removes_day_folders_older_than_the_window_only(tmp_path: Path) -> None:
    for age in (0, 1, 30, 31, 45):
        fake_backup(tmp_path, TODAY - timedelta(days=age))
    (tmp_path / "notes").mkdir()  # not ours: never touched
    (tmp_path / "2026-13-99").mkdir()  # not a real date
    plan = plan_retention(tmp_path, keep_days=30, today=TODAY)
    assert sorted(r.path.name for r in plan.remove) == [
        (TODAY - timedelta(days=45)).isoformat(), (TODAY - timedelta(days=31)).isoformat(),
    ]  # fmt: skip
    assert plan.kept == []


def test_retention_keeps_the_newest_verified_backup_and_a_minimum_count(tmp_path: Path) -> None:
    old_verified = fake_backup(tmp_path, TODAY - timedelta(days=60), verified=True)
    sibling = fake_backup(tmp_path, TODAY - timedelta(days=60), n=1)  # same day, newer, unverified
    older_verified = fake_backup(tmp_path, TODAY - timedelta(days=90), verified=True)
    newest = fake_backup(tmp_path, TODAY - timedelta(days=40))
    plan = plan_retention(tmp_path, keep_days=30, keep_min=1, today=TODAY)
    removed = {r.path for r in plan.remove}
    assert older_verified.parent in removed  # only the newest verified one is protected
    assert (
        sibling in removed and sibling.with_name(sibling.name.replace(".dump", ".manifest.json")) in removed
    )
    kept_files = {
        old_verified.with_name(old_verified.name.replace(".dump", s))
        for s in (".manifest.json", ".verified.json")
    }
    assert not removed & {old_verified, *kept_files}
    assert {k.path: k.reason for k in plan.kept} == {
        old_verified: "the newest verified backup", newest: "one of the newest 1",
    }  # fmt: skip
    assert plan_retention(tmp_path, keep_days=30, keep_min=1, today=TODAY, pending_backup=True).kept == [
        next(k for k in plan.kept if k.path == old_verified)
    ]  # a dry run counts the backup about to be taken as the newest
    with pytest.raises(UsageError):
        plan_retention(tmp_path, keep_min=0)


def test_dry_run_removes_nothing_and_a_failed_backup_prunes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = fake_backup(tmp_path, datetime.now(UTC).date() - timedelta(days=40)).parent
    fake_backup(tmp_path, datetime.now(UTC).date() - timedelta(days=35))
    assert main(["backup", "--dir", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"remove {old}" in out and old.exists()
    url = f"postgresql://u:p@127.0.0.1:{free_port()}/relay"
    assert main(["backup", "--database-url", url, "--dir", str(tmp_path)]) == 5
    assert old.exists(), "pruning ran although no new backup completed"
    assert main(["backup", "--dir", str(tmp_path), "--dry-run", "--keep-min", "0"]) == 2


def test_a_successful_backup_prunes(source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = fake_backup(tmp_path, datetime.now(UTC).date() - timedelta(days=40)).parent
    assert main(["backup", "--database-url", source, "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert not old.exists() and "1 removed" in out
    assert len(list_backups(tmp_path)) == 1
    assert os.listdir(tmp_path) == [datetime.now(UTC).strftime("%Y-%m-%d")]


# -- what the manifest promises, checked apart from the drill ------------------------------------------


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def test_digests_follow_the_key_and_not_the_order_of_rows_on_disk(pg_database: str, tmp_path: Path) -> None:
    """The documented formula, computed here by hand: rows ordered by primary key (text keys COLLATE "C"),
    a table without a key as the sorted multiset of its row hashes, an empty table md5(''), and a table
    digest the md5 of its chunk digests. The rows lie out of key order on disk, so a digest over rows in
    scan order would differ — which a drill cannot see: pg_dump copies rows in scan order, so the restore
    holds them in the same order as the source."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE keyed (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO keyed SELECT g, md5(g::text) FROM generate_series(1, 400) g")
        conn.execute("UPDATE keyed SET v = v WHERE id % 3 = 0")  # new row versions at the table's end
        conn.execute("CREATE TABLE named (k text PRIMARY KEY, n int)")
        conn.execute("INSERT INTO named VALUES ('b', 1), ('_', 2), ('A', 3), ('a', 4), ('B', 5)")
        conn.execute("CREATE TABLE loose (v text)")
        conn.execute("INSERT INTO loose VALUES ('x'), ('y'), ('x')")
        conn.execute("CREATE TABLE empty (id int PRIMARY KEY)")
        scan = conn.execute("SELECT md5(string_agg(md5(ROW(r.*)::text), '')) FROM keyed r").fetchone()
        expected = {
            "keyed": conn.execute(
                "SELECT md5(string_agg(md5(ROW(r.*)::text), '' ORDER BY r.id)) FROM keyed r"
            ).fetchone(),
            "named": conn.execute(
                "SELECT md5(string_agg(md5(ROW(r.*)::text), '' ORDER BY r.k COLLATE \"C\")) FROM named r"
            ).fetchone(),
            "loose": conn.execute(
                "SELECT md5(string_agg(h, '' ORDER BY h COLLATE \"C\"))"
                " FROM (SELECT md5(ROW(r.*)::text) AS h FROM loose r) s"
            ).fetchone(),
            "empty": conn.execute("SELECT md5('')").fetchone(),
        }
    assert scan != expected["keyed"], "the rows are not out of key order on disk: the test proves nothing"
    tables = {t["table"]: t for t in take_backup(pg_database, tmp_path / "b").manifest()["tables"]}
    for name, (chunk,) in expected.items():  # type: ignore[misc]
        t = tables[name]
        assert [c["digest"] for c in t["chunks"]] == [chunk], name
        assert t["digest"] == _md5(chunk), name
    assert (tables["loose"]["key"], tables["loose"]["rows"], tables["empty"]["rows"]) == ([], 3, 0)


def test_the_dump_is_synced_and_renamed_before_its_manifest_is_written(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash at any moment leaves a complete backup or none: the manifest — what makes a dump a backup —
    is written only once the dump is on disk under its final name."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_fsync_dir = os.fsync, os.replace, backup_mod.fsync_dir

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(("rename", f"{Path(src).name} -> {Path(dst).name}"))
        real_replace(src, dst)

    def fsync_dir(path: Path) -> None:
        events.append(("fsync dir", Path(path).name))
        real_fsync_dir(path)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(backup_mod, "fsync_dir", fsync_dir)
    b = take_backup(source, tmp_path / "backups")
    monkeypatch.undo()
    dump, manifest, day = b.dump.name, b.manifest_path.name, b.dump.parent.name
    mine = [e for e in events if b.stem in e[1] or e == ("fsync dir", day)]
    assert (
        mine[-7:]
        == [
            ("fsync", f".{dump}.partial"),
            ("rename", f".{dump}.partial -> {dump}"),
            ("fsync dir", day),
            ("fsync", f".{manifest}.partial"),
            ("rename", f".{manifest}.partial -> {manifest}"),
            ("fsync dir", day),
        ][-7:]
    ), mine
    assert mine.index(("rename", f".{dump}.partial -> {dump}")) < mine.index(
        ("fsync", f".{manifest}.partial")
    )
    assert (b.manifest()["dump"]["sha256"], b.manifest()["dump"]["size_bytes"]) == sha256_of(b.dump)


@pytest.mark.parametrize("when", ["writing the manifest", "hashing (Ctrl-C)"])
def test_a_backup_that_fails_after_the_dump_leaves_nothing(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A dump without its manifest is removed, and a dump left without one is never listed as a backup."""
    import errno

    if when == "writing the manifest":

        def full(path: Path, doc: dict[str, Any]) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(backup_mod, "write_json_atomic", full)
        with pytest.raises(InfrastructureError, match="disk full writing the backup"):
            take_backup(source, tmp_path / "backups")
    else:

        def interrupted(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(backup_mod, "fingerprint", interrupted)
        with pytest.raises(KeyboardInterrupt):
            take_backup(source, tmp_path / "backups")
    left = [p.name for p in (tmp_path / "backups").rglob("*") if p.is_file()]
    assert left == [], f"the failed backup left {left}"
    # a dump whose manifest never came (a process killed outright) is not a backup
    day = tmp_path / "backups" / datetime.now(UTC).strftime("%Y-%m-%d")
    (day / "relay-20260101T000000Z.dump").write_bytes(b"PGDMP")
    (day / ".relay-20260101T000001Z.dump.partial").write_bytes(b"PGDMP")
    assert list_backups(tmp_path / "backups") == []


def test_the_snapshot_is_read_only_repeatable_read_and_its_tables_are_locked(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump dumps the exported snapshot while its transaction stays open, with every table under an
    ACCESS SHARE lock taken first: no DDL can change a table between the dump and the counts."""
    said: list[str] = []
    real_connect = backup_mod.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = real_connect(*args, **kwargs)
        execute = conn.execute

        def logged(query: Any, *a: Any, **kw: Any) -> Any:
            said.append(query if isinstance(query, str) else query.as_string(conn))
            return execute(query, *a, **kw)

        conn.execute = logged  # type: ignore[method-assign]
        return conn

    argv: list[list[str]] = []
    real_popen = subprocess.Popen

    def popen(a: list[str], **kw: Any) -> Any:
        argv.append(list(a))
        return real_popen(a, **kw)

    seen: dict[str, Any] = {}

    def at_snapshot(snapshot: str) -> None:
        seen["snapshot"] = snapshot
        with psycopg.connect(source, autocommit=True) as other:
            seen["locks"] = {
                r[0]
                for r in other.execute(
                    "SELECT l.relation::regclass::text FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    " WHERE a.application_name = 'relay-gate backup' AND l.mode = 'AccessShareLock'"
                    " AND l.granted AND l.locktype = 'relation'"
                ).fetchall()
            }
            other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("ALTER TABLE bulk_events ADD COLUMN meanwhile int")

    monkeypatch.setattr(backup_mod, "connect", connect)
    monkeypatch.setattr(backup_mod.subprocess, "Popen", popen)
    b = take_backup(source, tmp_path / "backups", on_snapshot=at_snapshot)
    assert "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" in said
    assert (
        said[said.index("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") + 1]
        == "SELECT pg_export_snapshot()"
    )
    assert "SET LOCAL lock_timeout = '120s'" in said
    assert {"alembic_version", "audit_log", "bulk_events"} <= seen["locks"]
    (dump_argv,) = [a for a in argv if Path(a[0]).name == "pg_dump" and "--version" not in a]
    assert {"--format=custom", f"--snapshot={seen['snapshot']}", "--lock-wait-timeout=120s"} <= set(dump_argv)
    assert b.manifest()["snapshot"] == {"id": seen["snapshot"], "isolation": "repeatable read read only"}


def test_taken_at_is_the_snapshots_time_and_names_the_backup_in_utc(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """taken_at is when the snapshot was exported (the RPO is measured from it), not when the dump
    finished; the day folder and the name are UTC whatever the machine's time zone."""
    import time as time_mod

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: a local date is another day than UTC's
    time_mod.tzset()
    marks: list[datetime] = []

    def slow(_snapshot: str) -> None:
        marks.append(datetime.now(UTC))
        time_mod.sleep(1.2)

    before = datetime.now(UTC)
    try:
        b = take_backup(source, tmp_path / "backups", on_snapshot=slow)
    finally:
        monkeypatch.delenv("TZ")
        time_mod.tzset()
    m = b.manifest()
    taken = datetime.fromisoformat(m["taken_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(m["finished_at"].replace("Z", "+00:00"))
    assert before <= taken <= marks[0] and finished - taken >= timedelta(seconds=1.2)
    assert b.day == taken.strftime("%Y-%m-%d") and b.dump.parent.name == b.day
    assert b.stem == f"{PgConn.parse(source).dbname}-{taken.strftime('%Y%m%dT%H%M%SZ')}"


def test_backups_within_one_second_get_numbered_suffixes(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = datetime(2026, 11, 26, 9, 0, 2, tzinfo=UTC)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Clock:  # type: ignore[override]
            return cls.fromtimestamp(frozen.timestamp(), tz)

    monkeypatch.setattr(backup_mod, "datetime", Clock)
    stems = [take_backup(source, tmp_path / "b").stem for _ in range(3)]
    base = f"{PgConn.parse(source).dbname}-20261126T090002Z"
    assert stems == [base, f"{base}-2", f"{base}-3"]
    assert [b.stem for b in list_backups(tmp_path / "b")] == stems  # and they sort in that order


def test_which_tables_a_backup_holds(pg_database: str, tmp_path: Path) -> None:
    """Every ordinary table, partitions included and their partitioned parent not, in any schema but
    pg_* and information_schema; not an extension's tables (CREATE EXTENSION recreates them) — and the
    drill restores and matches exactly those."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE measures (at date NOT NULL, v int) PARTITION BY RANGE (at)")
        conn.execute(
            "CREATE TABLE measures_2025 PARTITION OF measures"
            " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
        )
        conn.execute(
            "CREATE TABLE measures_2026 PARTITION OF measures"
            " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
        )
        conn.execute("INSERT INTO measures VALUES ('2025-05-01', 1), ('2026-05-01', 2), ('2026-06-01', 3)")
        conn.execute("CREATE SCHEMA billing")
        conn.execute("CREATE TABLE billing.invoices (id int PRIMARY KEY)")
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE extension_owned (id int)")
        conn.execute("ALTER EXTENSION vector ADD TABLE extension_owned")
        conn.execute("CREATE UNLOGGED TABLE scratch (id int)")
    names = {
        f"{t['schema']}.{t['table']}": t["rows"]
        for t in take_backup(pg_database, tmp_path / "b").manifest()["tables"]
    }
    assert names == {
        "billing.invoices": 0, "public.alembic_version": 1, "public.audit_log": 0, "public.measures_2025": 1,
        "public.measures_2026": 2, "public.scratch": 0,
    }  # fmt: skip
    result = run_drill(DrillOptions(pg_database, tmp_path / "b", restore_to="same"))
    assert result.passed, result.reason
    assert sorted(t["table"] for t in result.doc["tables"]) == sorted(names)


def test_a_temporary_table_is_not_backed_up(source: str, tmp_path: Path) -> None:
    with psycopg.connect(source, autocommit=True) as conn:  # held open through the backup
        conn.execute("CREATE TEMPORARY TABLE session_scratch (id int)")
        conn.execute("INSERT INTO session_scratch VALUES (1)")
        tables = {t["table"] for t in take_backup(source, tmp_path / "b").manifest()["tables"]}
    assert tables == {"alembic_version", "audit_log", "bulk_events"}


# -- the command line ------------------------------------------------------------------------------


def test_compress_and_jobs_reach_pg_dump_and_the_hashing(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gate.drill.backup import BACKUP_JOBS

    # pg_dump's gzip keeps a core busy: the other CPUs hash, four at most
    assert max(1, min(4, (os.cpu_count() or 1) - 1)) == BACKUP_JOBS
    argv: list[list[str]] = []
    jobs: list[int] = []
    real_popen, real_fingerprint = subprocess.Popen, backup_mod.fingerprint

    def popen(a: list[str], **kw: Any) -> Any:
        argv.append(list(a))
        return real_popen(a, **kw)

    def fingerprint(*args: Any, **kwargs: Any) -> Any:
        jobs.append(kwargs["jobs"])
        return real_fingerprint(*args, **kwargs)

    monkeypatch.setattr(backup_mod.subprocess, "Popen", popen)
    monkeypatch.setattr(backup_mod, "fingerprint", fingerprint)
    code = main(["backup", "--database-url", source, "--dir", str(tmp_path / "b"), "--compress", "1",
                 "--jobs", "3", "--no-prune"])  # fmt: skip
    assert code == 0
    dump_argv = next(a for a in argv if Path(a[0]).name == "pg_dump" and "--version" not in a)
    assert "--compress=1" in dump_argv and jobs == [3]
    with pytest.raises(SystemExit) as exc:
        main(["backup", "--database-url", source, "--dir", str(tmp_path / "b"), "--compress", "lz4"])
    assert exc.value.code == 2


def test_usage_errors_are_exit_2_and_a_failed_pruning_exit_5_after_a_complete_backup(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gate.commands.backup as backup_cmd

    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["backup", "--database-url", source])  # no --dir
    assert exc.value.code == 2
    assert main(["backup", "--dir", str(tmp_path / "b")]) == 2  # no database URL at all
    assert "no database" in capsys.readouterr().err
    assert main(["backup", "--database-url", "not a url", "--dir", str(tmp_path / "b")]) == 2
    assert main(["backup", "--database-url", source, "--dir", str(tmp_path / "b"), "--keep-min", "0"]) == 2
    assert not (tmp_path / "b").exists(), "a usage error wrote something"

    def broken(plan: Any) -> None:
        raise PermissionError(13, "Permission denied", "/backups/2026-01-01")

    monkeypatch.setattr(backup_cmd, "apply_retention", broken)
    assert main(["backup", "--database-url", source, "--dir", str(tmp_path / "b")]) == 5
    assert "the backup is complete, but pruning failed" in capsys.readouterr().err
    assert len(list_backups(tmp_path / "b")) == 1


def test_pg_dump_is_looked_for_in_pg_bin_only_or_else_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pg-bin alone when given; otherwise $RELAY_GATE_PG_BIN, the bundled 16.2 binaries, then PATH."""
    newer = _fake_tool(tmp_path / "pg17", "pg_dump", "17.1")
    older = _fake_tool(tmp_path / "pg15", "pg_dump", "15.4")
    on_path = _fake_tool(tmp_path / "path", "pg_dump", "18.0")
    monkeypatch.setenv("PATH", f"{on_path}:{os.environ['PATH']}")
    monkeypatch.setenv("RELAY_GATE_PG_BIN", str(newer))
    assert find_tool("pg_dump", at_least=16, pg_bin=None) == (newer / "pg_dump", "17.1")
    with pytest.raises(InfrastructureError, match=r"pg_dump must be PostgreSQL 16 or newer.*15\.4"):
        find_tool("pg_dump", at_least=16, pg_bin=older)  # --pg-bin only, though better ones exist
    monkeypatch.setenv("RELAY_GATE_PG_BIN", str(older))  # too old: the bundled one is next
    path, version = find_tool("pg_dump", at_least=16, pg_bin=None)
    assert version == "16.2" and path.parent != on_path
    assert find_tool("pg_dump", at_least=17, pg_bin=None) == (on_path / "pg_dump", "18.0")  # PATH last


def test_retention_never_follows_a_day_folder_out_of_the_backup_root(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    fake_backup(outside, TODAY - timedelta(days=90))
    root = tmp_path / "root"
    root.mkdir()
    (root / (TODAY - timedelta(days=80)).isoformat()).symlink_to(
        outside / (TODAY - timedelta(days=90)).isoformat()
    )
    plan = plan_retention(root, keep_days=30, today=TODAY)
    assert plan.remove == []
    for n in range(3):
        fake_backup(root, TODAY - timedelta(days=60 + n))
    plan = plan_retention(root, keep_days=30, keep_min=2, today=TODAY)
    assert sorted(k.path.parent.name for k in plan.kept) == [
        (TODAY - timedelta(days=61)).isoformat(), (TODAY - timedelta(days=60)).isoformat()
    ]  # fmt: skip
    assert [r.path.name for r in plan.remove] == [(TODAY - timedelta(days=62)).isoformat()]


def test_a_failing_pg_dump_is_exit_5_with_its_error_line_and_leaves_nothing(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "pg_dump"
    tool.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 16.2"; exit 0; fi\n'
        'echo "pg_dump: warning: something harmless" >&2\n'
        'echo "pg_dump: error: query failed: ERROR:  permission denied for table audit_log" >&2\n'
        "exit 1\n"
    )
    tool.chmod(0o755)
    code = main(["backup", "--database-url", source, "--dir", str(tmp_path / "b"), "--pg-bin", str(bin_dir)])
    err = capsys.readouterr().err
    assert code == 5, err
    assert "pg_dump failed (exit 1): pg_dump: error: query failed: ERROR:  permission denied" in err
    assert [p for p in (tmp_path / "b").rglob("*") if p.is_file()] == []


def test_no_row_reaches_python_only_a_count_and_a_digest_per_chunk(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server computes the digests: whatever the table's size, each chunk sends back one row."""
    fetched: list[int] = []
    real_connect = fingerprint_mod.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = real_connect(*args, **kwargs)
        execute = conn.execute

        def counted(*a: Any, **kw: Any) -> Any:
            cur = execute(*a, **kw)
            rows = cur.fetchall() if cur.description else []
            fetched.append(len(rows))

            class Rows:
                description = cur.description

                def fetchone(self) -> Any:
                    return rows[0] if rows else None

                def fetchall(self) -> list[Any]:
                    return rows

            return Rows()

        conn.execute = counted  # type: ignore[method-assign]
        return conn

    monkeypatch.setattr(fingerprint_mod, "CHUNK_ROWS", 1000)
    monkeypatch.setattr(fingerprint_mod, "connect", connect)
    b = take_backup(source, tmp_path / "backups", jobs=2)
    chunks = sum(len(t["chunks"]) for t in b.manifest()["tables"])
    assert chunks == 5 and b.manifest()["totals"]["rows"] == 3006  # 3 chunks of bulk_events, 2 tables
    assert max(fetched) == 1, fetched  # SET statements return nothing; each chunk query one row


def test_text_keys_are_ordered_by_their_bytes_whatever_the_servers_locale() -> None:
    """COLLATE "C" on every collatable key column, so a restore on a server with another locale orders
    them the same. Shown on the query: the bundled PostgreSQL has no locale but C (no ICU), so no server
    here could sort them otherwise."""
    from gate.drill.fingerprint import KeyCol, TablePlan, _chunk_query

    plan = TablePlan("public", "t", (KeyCol("name", True, False), KeyCol("n", False, True)))
    text = _chunk_query(plan, None, None).as_string(None)
    assert 'ORDER BY r."name" COLLATE "C", r."n")' in text, text
    loose = _chunk_query(TablePlan("public", "t"), None, None).as_string(None)
    assert 'ORDER BY h COLLATE "C"' in loose and "md5('')" in loose, loose


def test_only_a_one_column_integer_key_is_split_into_ranges(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint_mod, "CHUNK_ROWS", 10)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE by_int (id bigint PRIMARY KEY)")
        conn.execute("CREATE TABLE by_text (k text PRIMARY KEY)")
        conn.execute("CREATE TABLE by_pair (a int, b int, PRIMARY KEY (a, b))")
        conn.execute("CREATE TABLE no_key (v int)")
        for t, row in (("by_int", "g"), ("by_text", "g::text"), ("by_pair", "g, g"), ("no_key", "g")):
            conn.execute(f"INSERT INTO {t} SELECT {row} FROM generate_series(1, 50) g")  # noqa: S608
    chunks = {
        t["table"]: len(t["chunks"]) for t in take_backup(pg_database, tmp_path / "b").manifest()["tables"]
    }
    assert chunks == {
        "alembic_version": 1,
        "audit_log": 1,
        "by_int": 5,
        "by_text": 1,
        "by_pair": 1,
        "no_key": 1,
    }
    assert run_drill(DrillOptions(pg_database, tmp_path / "b", restore_to="same")).passed


def test_views_functions_sequences_and_indexes_are_restored_but_only_tables_compared(
    pg_database: str, tmp_path: Path
) -> None:
    """pg_restore fails on any error, so they must restore; the comparison is of tables only."""
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE tickets START 500")
        conn.execute("SELECT nextval('tickets')")
        conn.execute("CREATE VIEW recent AS SELECT id FROM audit_log ORDER BY id DESC LIMIT 10")
        conn.execute("CREATE MATERIALIZED VIEW counted AS SELECT count(*) AS n FROM audit_log")
        conn.execute("CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2'")
        conn.execute("CREATE INDEX audit_by_role ON audit_log (role)")
    take_backup(pg_database, tmp_path / "b")
    result = run_drill(DrillOptions(pg_database, tmp_path / "b", restore_to="same"))
    assert result.passed, result.reason
    assert sorted(t["table"] for t in result.doc["tables"]) == ["public.alembic_version", "public.audit_log"]
