"""relay-gate drill: restores and compares table by table, and fails — saying why — when it should."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gate.cli import main
from gate.drill.backup import sha256_of, take_backup
from gate.drill.compare import compare_tables
from gate.drill.fingerprint import PgConn, TablePlan, TablePrint
from gate.drill.layout import Backup
from gate.drill.record import write_results
from gate.drill.restore import (
    EPHEMERAL_PREFIX,
    DrillOptions,
    DrillResult,
    run_drill,
    seed_bulk_table,
)
from gate.durations import parse_duration
from gate.errors import UsageError
from gate.stack.postgres.server import EmbeddedPostgres
from gate.stack.postgres.tools import find_tool
from gate.stack.procs import free_port

pytestmark = pytest.mark.stack


@pytest.fixture
def source(pg_database: str) -> str:
    seed_bulk_table(pg_database, rows=2000)
    return pg_database


@pytest.fixture
def backup(source: str, tmp_path: Path) -> Backup:
    return take_backup(source, tmp_path / "backups")


def drill(source: str, tmp_path: Path, **kw: Any) -> DrillResult:
    return run_drill(
        DrillOptions(source, tmp_path / "backups", restore_to=kw.pop("restore_to", "same"), **kw)
    )


def leftovers(pg: EmbeddedPostgres) -> list[str]:
    with psycopg.connect(pg.url(), connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (EPHEMERAL_PREFIX,)
        )
        return [r[0] for r in rows.fetchall()]


def rewrite_manifest(b: Backup, change: Any) -> None:
    m = json.loads(b.manifest_path.read_text())
    change(m)
    b.manifest_path.write_text(json.dumps(m))


def test_a_good_backup_passes_and_the_results_say_what_was_seen(
    pg_server: EmbeddedPostgres, source: str, backup: Backup, tmp_path: Path
) -> None:
    result = drill(source, tmp_path, rto_s=600, rpo_s=3600, run_id="r1")
    assert result.passed and result.exit_code == 0, result.reason
    path = write_results(result, tmp_path / "results")
    doc = json.loads(path.read_text())
    assert doc["schema"] == "relay-gate/drill@1" and doc["verdict"] == "PASSED"
    assert doc["reason"] == "3 tables, 2001 rows restored, all matching the backup"
    assert doc["backup"]["sha256"] == doc["backup"]["sha256_actual"] == sha256_of(backup.dump)[0]
    assert doc["backup"]["checksum_ok"] and doc["backup"]["size_bytes"] == backup.dump.stat().st_size
    assert list(doc["phases"]) == ["checksum", "create_db", "restore", "verify", "drop"]
    assert all(p["ok"] and p["duration_s"] >= 0 for p in doc["phases"].values())
    bulk = next(t for t in doc["tables"] if t["table"] == "public.bulk_events")
    assert bulk["source"] == bulk["restored"] and bulk["source"]["rows"] == 2000 and bulk["match"]
    assert doc["rto"]["passed"] and doc["rto"]["target_s"] == 600 and doc["rto"]["measured_s"] > 0
    assert doc["rpo"]["passed"] and 0 <= doc["rpo"]["measured_s"] <= 3600
    assert doc["restore"]["strategy"] == "single transaction"
    assert (
        "--exit-on-error" in doc["restore"]["command"] and "--single-transaction" in doc["restore"]["command"]
    )
    # it proves the data, not the ACLs or the cluster's objects
    assert {
        "--no-owner",
        "--no-privileges",
        "--no-tablespaces",
        "--no-publications",
        "--no-subscriptions",
    } <= set(doc["restore"]["command"])
    assert doc["restore_target"]["created"] and doc["restore_target"]["dropped"]
    assert doc["process"]["peak_rss_kib"] > 0 and doc["provenance"]["run_id"] == "r1"
    assert json.loads((tmp_path / "results" / "run.json").read_text())["schema"] == "relay-gate/run@1"
    assert doc["verified_marker"] == str(backup.verified_path) and backup.verified
    password = PgConn.parse(source).password
    assert password and password not in path.read_text()
    assert leftovers(pg_server) == []


def test_parallel_restore_and_an_embedded_restore_target_pass_too(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    parallel = drill(source, tmp_path, jobs=2)
    assert parallel.passed, parallel.reason
    assert parallel.doc["restore"]["strategy"] == "parallel, 2 jobs"
    embedded = drill(source, tmp_path, restore_to="embedded")
    assert embedded.passed, embedded.reason
    assert list(embedded.doc["phases"])[:3] == ["checksum", "start_server", "create_db"]
    assert embedded.doc["restore_target"]["server_removed"]
    assert embedded.doc["restore_target"]["port"] != PgConn.parse(source).describe()["port"]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("flip", "checksum mismatch"),
        ("cut", "truncated dump"),
        ("grow", "checksum mismatch"),
        ("rm", "backup missing"),
    ],
)
def test_a_damaged_dump_fails_before_any_restore(
    source: str, backup: Backup, tmp_path: Path, damage: str, reason: str
) -> None:
    size = backup.dump.stat().st_size
    if damage == "flip":
        data = bytearray(backup.dump.read_bytes())
        data[size // 2] ^= 0x01
        backup.dump.write_bytes(bytes(data))
    elif damage == "cut":
        with open(backup.dump, "r+b") as f:
            f.truncate(size - 100)
    elif damage == "grow":
        with open(backup.dump, "ab") as f:
            f.write(b"junk")
    else:
        backup.dump.unlink()
    result = drill(source, tmp_path)
    assert (result.exit_code, result.doc["verdict"]) == (1, "FAILED")
    assert result.reason.startswith(reason), result.reason
    assert "create_db" not in result.doc["phases"] and not backup.verified


def test_a_truncated_dump_whose_manifest_agrees_fails_the_restore_and_drops_the_database(
    pg_server: EmbeddedPostgres, source: str, backup: Backup, tmp_path: Path
) -> None:
    with open(backup.dump, "r+b") as f:
        f.truncate(backup.dump.stat().st_size * 2 // 3)
    sha, size = sha256_of(backup.dump)
    rewrite_manifest(backup, lambda m: m["dump"].update(sha256=sha, size_bytes=size))
    result = drill(source, tmp_path)
    assert result.exit_code == 1 and result.reason.startswith("pg_restore failed"), result.reason
    assert result.doc["restore_target"]["created"] and result.doc["restore_target"]["dropped"]
    assert result.doc["phases"]["drop"]["ok"] and leftovers(pg_server) == []
    assert result.doc["rto"]["measured_s"] is None and not result.doc["rto"]["passed"]


def test_no_directory_no_backup_and_another_databases_backup_fail(
    pg_server: EmbeddedPostgres, source: str, tmp_path: Path
) -> None:
    missing = drill(source, tmp_path / "nowhere")
    assert missing.exit_code == 1 and "does not exist" in missing.reason
    (tmp_path / "backups" / "2026-01-01").mkdir(parents=True)
    empty = drill(source, tmp_path)
    assert empty.exit_code == 1 and empty.reason.startswith("no backup in")
    other = pg_server.url("postgres")
    take_backup(other, tmp_path / "backups")
    wrong = drill(source, tmp_path)
    assert wrong.exit_code == 1 and wrong.reason.startswith(
        "wrong database: the latest backup is of 'postgres'"
    )


def test_an_unreachable_restore_target_is_exit_5_and_recorded(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    dead = f"postgresql://postgres:hidden-pw-42@127.0.0.1:{free_port()}/postgres"
    result = drill(source, tmp_path, restore_to=dead)
    assert result.exit_code == 5, result.reason
    assert result.reason.startswith("restore target 127.0.0.1") and "unreachable" in result.reason
    doc = json.loads(write_results(result, tmp_path / "results").read_text())
    assert (doc["verdict"], doc["exit_code"]) == ("FAILED", 5)
    assert "hidden-pw-42" not in json.dumps(doc) and not backup.verified


def test_without_a_source_the_latest_backup_is_restored_on_a_server_of_its_own(
    source: str, backup: Backup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment's backups may be all the gate has: no source URL, the manifest says what it is of."""
    result = run_drill(DrillOptions(None, tmp_path / "backups", restore_to="auto"))
    assert result.passed, result.reason
    assert result.doc["restore_target"]["mode"] == "embedded"  # auto: nothing to restore beside
    assert result.doc["source"] == {**backup.manifest()["source"], "from": "the backup's manifest"}
    with pytest.raises(UsageError, match="--restore-to same needs the source's --database-url"):
        run_drill(DrillOptions(None, tmp_path / "backups", restore_to="same"))
    nothing = run_drill(DrillOptions(None, tmp_path / "nowhere", restore_to="embedded"))
    assert nothing.exit_code == 1 and nothing.doc["source"] is None
    write_results(nothing, tmp_path / "r0")
    assert json.loads((tmp_path / "r0" / "run.json").read_text())["target"]["name"].startswith("backups in")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("RELAY_GATE_RESTORE_TO", raising=False)
    assert main(["drill", "--dir", str(tmp_path / "backups"), "--results", str(tmp_path / "r1")]) == 0


def test_rpo_and_rto_targets_fail_the_drill_after_a_complete_restore(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    old = drill(source, tmp_path, rpo_s=0.0)
    assert old.exit_code == 1 and old.reason.startswith("RPO exceeded: the latest backup is"), old.reason
    assert old.doc["summary"]["matching"] == 3  # still restored and verified: the evidence is complete
    slow = drill(source, tmp_path, rto_s=0.0)
    assert slow.exit_code == 1 and slow.reason.startswith("RTO exceeded: the restore took"), slow.reason
    both = drill(source, tmp_path, rto_s=0.0, rpo_s=0.0)
    assert len(both.doc["failures"]) == 2


# -- proof that the comparison can fail ----------------------------------------------------------------


def test_a_restore_missing_a_table_or_with_an_extra_one_fails_the_comparison() -> None:
    def table(name: str, rows: int) -> dict[str, Any]:
        return {"schema": "public", "table": name, "key": ["id"], "rows": rows, "digest": "d" * 32,
                "chunks": [{"from": None, "to": None, "rows": rows, "digest": "c"}]}  # fmt: skip

    restored = [TablePrint(TablePlan("public", "a"), ((5, "c"),))]
    rows, problems = compare_tables([table("a", 5), table("b", 7)], restored)
    assert [r["status"] for r in rows] == ["differs", "missing"]  # a's table digest is not md5("c")
    assert "public.b is missing from the restore" in problems
    _rows, problems = compare_tables([], [TablePrint(TablePlan("public", "x"), ((1, "c"),))])
    assert problems == ["public.x is in the restore but not in the manifest"]


def test_a_dump_that_skipped_a_table_fails_the_drill(source: str, backup: Backup, tmp_path: Path) -> None:
    """The backup left bulk_events out of the dump (as a broken backup job would): the drill sees it."""
    pg_dump = find_tool("pg_dump", at_least=16, pg_bin=None)[0]
    conn = PgConn.parse(source)
    subprocess.run(
        [str(pg_dump), "-Fc", "-T", "bulk_events", f"--file={backup.dump}", f"--dbname={conn.argv_dsn}"],
        env=conn.child_env("test"), check=True,
    )  # fmt: skip
    sha, size = sha256_of(backup.dump)
    rewrite_manifest(backup, lambda m: m["dump"].update(sha256=sha, size_bytes=size))
    result = drill(source, tmp_path)
    assert result.exit_code == 1
    assert "public.bulk_events is missing from the restore" in result.reason, result.reason
    assert {t["table"]: t["status"] for t in result.doc["tables"]}["public.bulk_events"] == "missing"


def test_a_manifest_counted_outside_the_dumps_snapshot_is_detected(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    """Counts taken after the dump (rows inserted in between) do not describe the dump: the drill fails."""
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO bulk_events SELECT g, 'x', 'x', 'x', 0, now() FROM generate_series(5001, 5010) g"
        )
        live = int(conn.execute("SELECT count(*) FROM bulk_events").fetchone()[0])  # type: ignore[index]

    def counted_late(m: dict[str, Any]) -> None:
        bulk = next(t for t in m["tables"] if t["table"] == "bulk_events")
        bulk["rows"] = bulk["chunks"][0]["rows"] = live

    rewrite_manifest(backup, counted_late)
    result = drill(source, tmp_path)
    assert result.exit_code == 1
    assert "public.bulk_events has 2000 rows, the backup 2010" in result.reason, result.reason


def test_a_changed_row_is_located_by_its_chunk(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gate.drill.fingerprint

    monkeypatch.setattr(gate.drill.fingerprint, "CHUNK_ROWS", 500)
    b = take_backup(source, tmp_path / "backups")

    def tamper(m: dict[str, Any]) -> None:  # as if the row with id 1200 had other content in the source
        bulk = next(t for t in m["tables"] if t["table"] == "bulk_events")
        chunk = next(c for c in bulk["chunks"] if (c["from"] or 0) <= 1200 < (c["to"] or 10**9))
        chunk["digest"] = "0" * 32
        bulk["digest"] = hashlib.md5(
            "".join(c["digest"] for c in bulk["chunks"]).encode(), usedforsecurity=False
        ).hexdigest()

    rewrite_manifest(b, tamper)
    result = drill(source, tmp_path)
    bulk = next(t for t in result.doc["tables"] if t["table"] == "public.bulk_events")
    assert result.exit_code == 1 and "content differs from the backup (1 chunk(s))" in result.reason
    assert bulk["rows_match"] and len(bulk["chunks_differing"]) == 1


# -- the command line ------------------------------------------------------------------------------------


def test_the_command_line(
    source: str, backup: Backup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    base = ["drill", "--database-url", source, "--dir", str(tmp_path / "backups"), "--restore-to", "same"]
    assert main([*base, "--results", str(results), "--rto", "10m", "--rpo", "1h"]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASSED (exit 0)" in out and "RTO" in out and str(results / "drill" / "drill.json") in out
    run = json.loads((results / "run.json").read_text())
    assert run["command"] == "drill" and run["exit_code"] == 0
    backup.dump.write_bytes(b"PGDMP garbage")
    assert main([*base, "--results", str(results)]) == 1  # same folder: run.json is the first run's
    assert json.loads((results / "run.json").read_text())["run_id"] == run["run_id"]
    assert json.loads((results / "drill" / "drill.json").read_text())["run_id"] == run["run_id"]
    assert "FAILED: truncated dump" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["drill", "--database-url", source])  # no --dir
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([*base, "--rto", "soon"])
    assert exc.value.code == 2
    assert main([*base[:-1], "mysql://nope"]) == 2
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("-1")
    assert parse_duration("26h") == 93600 and parse_duration("1.5m") == 90


def test_a_pg_restore_older_than_the_dump_is_exit_5(source: str, backup: Backup, tmp_path: Path) -> None:
    old = tmp_path / "pg15"
    old.mkdir()
    (old / "pg_restore").write_text("#!/bin/sh\necho 'pg_restore (PostgreSQL) 15.4'\n")
    (old / "pg_restore").chmod(0o755)
    result = drill(source, tmp_path, pg_bin=old)
    assert result.exit_code == 5 and result.reason.startswith(
        "version mismatch: pg_restore must be PostgreSQL 16"
    )


def test_the_bulk_table_is_seeded_idempotently_with_the_same_content(pg_server: EmbeddedPostgres) -> None:
    for name in ("seed_a", "seed_b"):
        pg_server.drop_database(name)
        pg_server.create_database(name)
    try:
        assert seed_bulk_table(pg_server.url("seed_a"), rows=1500) == 1500
        assert seed_bulk_table(pg_server.url("seed_a"), rows=1500) == 1500
        assert seed_bulk_table(pg_server.url("seed_b"), rows=1500) == 1500
        digests = []
        for name in ("seed_a", "seed_b"):
            with psycopg.connect(pg_server.url(name)) as conn:
                q = "SELECT md5(string_agg(md5(ROW(r.*)::text), '' ORDER BY id)) FROM bulk_events r"
                digests.append(conn.execute(q).fetchone())
        assert digests[0] == digests[1]
    finally:
        for name in ("seed_a", "seed_b"):
            pg_server.drop_database(name)


def test_a_restore_target_out_of_disk_is_exit_5_saying_so(
    pg_server: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For real: the embedded restore server's data dir on a tmpfs with room for little more than initdb.

    Out of WAL space PostgreSQL PANICs and pg_restore only sees the connection drop; the drill reads
    the server's log to say "disk full" rather than "pg_restore failed".
    """
    mnt = Path(tempfile.mkdtemp(prefix="relay-gate-test-small-", dir="/var/tmp"))
    mnt.chmod(0o755)  # the server account must traverse it
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=56m,mode=755", "tmpfs", str(mnt)], capture_output=True
    )
    if res.returncode != 0:
        mnt.rmdir()
        pytest.skip(
            f"cannot mount a tmpfs here ({res.stderr.decode().strip()}): disk full not testable for real"
        )
    pg_server.create_database("drill_full")
    try:
        url = pg_server.url("drill_full")
        seed_bulk_table(url, rows=200_000)  # ~30 MB of table and WAL: more than the 18 MB left
        take_backup(url, tmp_path / "backups")
        monkeypatch.setenv("RELAY_GATE_PG_RUN_DIR", str(mnt))
        result = drill(url, tmp_path, restore_to="embedded")
    finally:
        pg_server.drop_database("drill_full")
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()
    assert result.exit_code == 5, result.reason
    assert result.reason.startswith("disk full on the restore target"), result.reason
    assert "RELAY_GATE_PG_RUN_DIR" in result.reason and result.doc["restore_target"]["server_removed"]


# -- where and how the restore happens -------------------------------------------------------------------


def test_the_ephemeral_database_takes_the_sources_encoding_and_the_c_locale(
    pg_server: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CREATE DATABASE relay_gate_drill_<random> TEMPLATE template0 ENCODING <source's> LOCALE 'C':
    digests hash stored bytes, so the restore keeps the source's encoding."""
    import gate.drill.restore as drill_mod

    pg_server.drop_database("latin_source")
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE latin_source TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C'")
    seen: list[tuple[str, str, str, str]] = []
    real = drill_mod.fingerprint_restore

    def looking(target: PgConn, *args: Any, **kwargs: Any) -> Any:
        with psycopg.connect(pg_server.url(), connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT datname, pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database"
                " WHERE datname = %s",
                (target.dbname,),
            ).fetchone()
        assert row is not None
        seen.append(row)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(drill_mod, "fingerprint_restore", looking)
    try:
        url = pg_server.url("latin_source")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE names (id int PRIMARY KEY, n text)")
            conn.execute("INSERT INTO names VALUES (1, 'Müller'), (2, 'façade')")
        take_backup(url, tmp_path / "backups")
        result = drill(url, tmp_path)
    finally:
        pg_server.drop_database("latin_source")
    assert result.passed, result.reason
    ((name, encoding, collate, ctype),) = seen
    assert name.startswith(EPHEMERAL_PREFIX) and len(name) == len(EPHEMERAL_PREFIX) + 8
    assert (encoding, collate, ctype) == ("LATIN1", "C", "C")
    assert result.doc["restore_target"]["database"] == name


def test_a_restore_role_without_createdb_is_exit_5_saying_what_to_grant(
    pg_server: EmbeddedPostgres, source: str, backup: Backup, tmp_path: Path
) -> None:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS drill_nocreate")
        conn.execute("CREATE ROLE drill_nocreate LOGIN NOCREATEDB PASSWORD 'nocreate-pw-7'")
    port = PgConn.parse(pg_server.url()).describe()["port"]
    try:
        url = f"postgresql://drill_nocreate:nocreate-pw-7@127.0.0.1:{port}/postgres"
        result = drill(source, tmp_path, restore_to=url)
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute("DROP ROLE drill_nocreate")
    assert result.exit_code == 5, result.reason
    assert "cannot create a database on the restore target" in result.reason
    assert "(grant CREATEDB, or use --restore-to embedded)" in result.reason
    target = result.doc["restore_target"]
    assert (target["created"], target["dropped"], target["mode"]) == (False, None, "url")
    assert "restore" not in result.doc["phases"] and "nocreate-pw-7" not in json.dumps(result.doc)


def test_a_database_that_cannot_be_dropped_is_exit_5_saying_drop_it_by_hand(
    pg_server: EmbeddedPostgres, source: str, backup: Backup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gate.drill.restore as drill_mod
    from gate.errors import InfrastructureError

    real, calls = drill_mod.connect, []

    def connect(*args: Any, **kwargs: Any) -> Any:  # create_db connects first, drop second
        calls.append(args)
        if len(calls) == 2:
            raise InfrastructureError("restore target 127.0.0.1 is unreachable (the server went away)")
        return real(*args, **kwargs)

    monkeypatch.setattr(drill_mod, "connect", connect)
    result = drill(source, tmp_path)
    monkeypatch.undo()
    left = leftovers(pg_server)
    for name in left:
        pg_server.drop_database(name)
    assert result.exit_code == 5, result.reason
    assert result.reason.startswith(f"could not drop {result.doc['restore_target']['database']} on")
    assert result.reason.endswith(": drop it by hand")
    assert result.doc["restore_target"]["dropped"] is False and left == [
        result.doc["restore_target"]["database"]
    ]
    assert result.doc["summary"]["matching"] == 3  # the restore itself was fine
    assert not backup.verified


def test_ctrl_c_during_the_drill_still_drops_the_ephemeral_database(
    pg_server: EmbeddedPostgres, source: str, backup: Backup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gate.drill.restore as drill_mod

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C while the restore is being verified

    monkeypatch.setattr(drill_mod, "fingerprint_restore", interrupted)
    with pytest.raises(KeyboardInterrupt):
        drill(source, tmp_path)
    assert leftovers(pg_server) == []


def test_the_source_is_contacted_only_when_it_is_the_restore_server(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    """Elsewhere the source URL only names the database the backups must be of."""
    dbname = PgConn.parse(source).dbname
    nowhere = f"postgresql://u:pw@127.0.0.1:{free_port()}/{dbname}"
    elsewhere = run_drill(DrillOptions(nowhere, tmp_path / "backups", restore_to="embedded"))
    assert elsewhere.passed, elsewhere.reason
    assert elsewhere.doc["source"]["port"] != elsewhere.doc["restore_target"]["port"]
    same = run_drill(DrillOptions(nowhere, tmp_path / "backups", restore_to="same"))
    assert same.exit_code == 5 and "unreachable" in same.reason


def test_auto_restores_beside_a_local_source_and_on_a_throwaway_server_otherwise() -> None:
    from gate.drill.restore import resolve_restore_to

    for host in ("localhost", "127.0.0.1", "[::1]", "%2Frun%2Fpostgresql"):
        assert resolve_restore_to("auto", PgConn.parse(f"postgresql://u@{host}/relay")) == "same", host
    assert resolve_restore_to("auto", PgConn.parse("postgresql://u@db.internal/relay")) == "embedded"
    assert resolve_restore_to("auto", None) == "embedded"  # no source: nothing to restore beside
    assert resolve_restore_to("embedded", PgConn.parse("postgresql://u@localhost/relay")) == "embedded"
    url = "postgresql://gate@restore-test.internal:5432/postgres"
    assert resolve_restore_to(url, None) == url
    with pytest.raises(UsageError, match="--restore-to same needs the source's --database-url"):
        resolve_restore_to("same", None)
    with pytest.raises(UsageError):
        resolve_restore_to("elsewhere", None)


def test_the_default_targets_are_15_minutes_and_26_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from gate.commands import drill as drill_cmd
    from gate.drill.restore import DEFAULT_RPO_S, DEFAULT_RTO_S

    assert (DEFAULT_RTO_S, DEFAULT_RPO_S) == (15 * 60, 26 * 3600)
    opts = DrillOptions(None, Path("b"))
    assert (opts.rto_s, opts.rpo_s, opts.jobs, opts.restore_to) == (900, 93600, 1, "auto")
    monkeypatch.delenv("RELAY_GATE_RESTORE_TO", raising=False)
    parser = argparse.ArgumentParser()
    drill_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["drill", "--dir", "b"])
    assert (args.rto, args.rpo, args.jobs, args.restore_to) == (900, 93600, 1, "auto")
    args = parser.parse_args(["drill", "--dir", "b", "--rto", "90s", "--rpo", "2d"])
    assert (args.rto, args.rpo) == (90, 172800)
    monkeypatch.setenv("RELAY_GATE_RESTORE_TO", "embedded")
    parser = argparse.ArgumentParser()
    drill_cmd.register(parser.add_subparsers())
    assert parser.parse_args(["drill", "--dir", "b"]).restore_to == "embedded"


# -- RPO and RTO -----------------------------------------------------------------------------------------


def test_the_rpo_is_the_snapshots_age_at_the_drill_start_not_the_files(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    taken = datetime.now(UTC) - timedelta(hours=2)
    stamp = taken.isoformat(timespec="microseconds").replace("+00:00", "Z")
    rewrite_manifest(backup, lambda m: m.update(taken_at=stamp))  # the dump file itself is seconds old
    result = drill(source, tmp_path, rpo_s=3 * 3600)
    assert result.passed, result.reason
    rpo = result.doc["rpo"]
    started = datetime.fromisoformat(result.doc["started_at"].replace("Z", "+00:00"))
    assert abs(rpo["measured_s"] - (started - taken).total_seconds()) < 0.01, (rpo, result.doc["started_at"])
    assert rpo["taken_at"] == stamp and rpo["definition"] == "drill start minus the backup's snapshot time"
    old = drill(source, tmp_path, rpo_s=3600)
    assert old.exit_code == 1 and old.reason.startswith("RPO exceeded: the latest backup is 2.0 h old")


def test_the_rto_counts_checksum_create_and_restore_only(source: str, backup: Backup, tmp_path: Path) -> None:
    """Starting a throwaway server and verifying the restore are the drill's own work, not a recovery's."""
    result = drill(source, tmp_path, restore_to="embedded")
    assert result.passed, result.reason
    phases = {k: v["duration_s"] for k, v in result.doc["phases"].items()}
    assert set(phases) == {"checksum", "start_server", "create_db", "restore", "verify", "drop"}
    expected = phases["checksum"] + phases["create_db"] + phases["restore"]
    assert abs(result.doc["rto"]["measured_s"] - expected) < 0.002, (result.doc["rto"], phases)


def test_the_rpo_scope_says_whether_this_run_took_the_backup(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    base = ["drill", "--database-url", source, "--dir", str(tmp_path / "backups"), "--restore-to", "same"]
    assert main([*base, "--results", str(tmp_path / "r1"), "--backup-taken-by-this-run"]) == 0
    assert json.loads((tmp_path / "r1" / "drill" / "drill.json").read_text())["rpo"]["scope"] == "this_run"
    assert main([*base, "--results", str(tmp_path / "r2")]) == 0
    assert json.loads((tmp_path / "r2" / "drill" / "drill.json").read_text())["rpo"]["scope"] == "latest"


def test_the_reason_is_the_gravest_failure_and_failures_list_them_all(
    pg_server: EmbeddedPostgres, source: str, backup: Backup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A false criterion over an infrastructure failure (exit 1), integrity before RPO and RTO."""
    import gate.drill.restore as drill_mod
    from gate.errors import InfrastructureError

    def other_rows(m: dict[str, Any]) -> None:
        bulk = next(t for t in m["tables"] if t["table"] == "bulk_events")
        bulk["chunks"][0]["digest"] = "0" * 32
        bulk["digest"] = hashlib.md5(("0" * 32).encode(), usedforsecurity=False).hexdigest()

    rewrite_manifest(backup, other_rows)
    real, calls = drill_mod.connect, []

    def connect(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:  # the drop
            raise InfrastructureError("restore target is unreachable")
        return real(*args, **kwargs)

    monkeypatch.setattr(drill_mod, "connect", connect)
    result = drill(source, tmp_path, rpo_s=0.0, rto_s=0.0)
    monkeypatch.undo()
    for name in leftovers(pg_server):
        pg_server.drop_database(name)
    assert result.exit_code == 1
    failures = result.doc["failures"]
    dropped = f"could not drop {result.doc['restore_target']['database']} on 127.0.0.1"
    assert [f.split(":")[0] for f in failures] == [
        "the restore differs from the backup", "RPO exceeded", "RTO exceeded", dropped
    ], failures  # fmt: skip
    assert result.reason == failures[0] and "\n" not in result.reason


def test_a_table_whose_key_column_is_gone_is_a_table_in_error(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    def renamed_key(m: dict[str, Any]) -> None:
        next(t for t in m["tables"] if t["table"] == "bulk_events")["key"] = ["event_id"]

    rewrite_manifest(backup, renamed_key)
    result = drill(source, tmp_path)
    bulk = next(t for t in result.doc["tables"] if t["table"] == "public.bulk_events")
    assert (result.exit_code, bulk["status"], bulk["restored"], bulk["match"]) == (1, "error", None, False)
    assert "public.bulk_events: column r.event_id does not exist" in result.reason, result.reason


# -- drill.json and the verified marker -------------------------------------------------------------


def test_a_failed_drill_marks_nothing_and_says_which_phases_ran(
    source: str, backup: Backup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def other_rows(m: dict[str, Any]) -> None:
        next(t for t in m["tables"] if t["table"] == "bulk_events")["rows"] += 1

    rewrite_manifest(backup, other_rows)
    differs = drill(source, tmp_path)
    doc = json.loads(write_results(differs, tmp_path / "r1").read_text())
    assert doc["verdict"] == "FAILED" and doc["verified_marker"] is None and not backup.verified
    backup.dump.unlink()
    missing = drill(source, tmp_path)
    doc = json.loads(write_results(missing, tmp_path / "r2").read_text())
    assert list(doc["phases"]) == ["checksum"] and not doc["phases"]["checksum"]["ok"]
    assert doc["restore_target"]["created"] is False and doc["restore_target"]["dropped"] is None
    assert doc["rto"]["measured_s"] is None and doc["tables"] == [] and doc["summary"] is None
    # a usage error writes no drill.json; every other outcome does
    base = ["drill", "--database-url", source, "--dir", str(tmp_path / "backups")]
    assert main([*base, "--restore-to", "nowhere", "--results", str(tmp_path / "r3")]) == 2
    assert not (tmp_path / "r3").exists()
    assert main([*base, "--restore-to", "same", "--results", str(tmp_path / "r4")]) == 1
    assert json.loads((tmp_path / "r4" / "drill" / "drill.json").read_text())["verdict"] == "FAILED"


def test_a_passing_drill_marks_its_backup_verified_unless_told_not_to(
    source: str, backup: Backup, tmp_path: Path
) -> None:
    result = drill(source, tmp_path, run_id="r-1")
    path = write_results(result, tmp_path / "results")
    marker = json.loads(backup.verified_path.read_text())
    assert marker == {
        "schema": "relay-gate/backup-verified@1", "backup": backup.dump.name,
        "sha256": backup.manifest()["dump"]["sha256"], "verified_at": marker["verified_at"],
        "drill_run_id": "r-1", "drill_json": str(path),
    }  # fmt: skip
    backup.verified_path.unlink()
    doc = json.loads(write_results(result, tmp_path / "theirs", mark=False).read_text())
    assert doc["verified_marker"] is None and not backup.verified  # a deployment's folder: untouched


def test_no_restore_drill_scenario_needs_control_of_the_target() -> None:
    """Sources are only read: no scenario kills, pauses or writes the target's database."""
    feature = (Path(__file__).resolve().parents[2] / "features" / "restore_drill.feature").read_text()
    assert "@needs-control" not in feature
