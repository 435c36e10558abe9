"""Steps for features/restore_drill.feature: find the target's latest backup, damage a copy, drill it.

On the reference stack the gate backs up the stack's database itself (``take_backup`` dumps one
read-only snapshot into a temp dir) and restores on the stack's own server. On a deployment the latest
backup is the newest in ``[backups].dir`` (target.backups), read in place and never written (no
verified marker either); the checks that damage a backup damage a copy in a temp dir
(gate/drill/deployment.py ``copy_latest``), and the restore goes to a local embedded PostgreSQL (or the
server ``RELAY_GATE_RESTORE_TO`` names). The drill always drops what it created.

Notes for RESTORE-DRILL-REPORT.md: ``backup`` (file, SHA-256, size, tables and rows of the manifest)
and ``drill`` (the relay-gate/drill@1 document: per-table counts and digests, source vs restored, the
duration of each phase, RTO/RPO measured vs target, verdict and reason).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pytest_bdd import given, parsers, then, when

from features.support import skips
from features.support.executes import admitted_execute, notify
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, Target
from gate.drill.backup import sha256_of, take_backup
from gate.drill.compare import ExpectedRows
from gate.drill.deployment import copy_latest, restore_to
from gate.drill.fingerprint import PgConn
from gate.drill.layout import STEM_RE, Backup, list_backups
from gate.drill.record import write_results
from gate.drill.restore import (
    DEFAULT_RPO_S,
    DEFAULT_RTO_S,
    EPHEMERAL_PREFIX,
    DrillOptions,
    DrillResult,
    human,
    run_drill,
)
from gate.durations import parse_duration

EXECUTES = 3


@dataclass
class DrillPlan:
    """What a scenario arranged: where backups go, the latest one, the targets, what was executed."""

    backup_dir: Path
    results: Path
    backup: Backup | None = None
    rpo_s: float = DEFAULT_RPO_S
    rto_s: float = DEFAULT_RTO_S
    executed: list[str] = field(default_factory=list)
    # rows the restore must hold besides the executes' (a scenario that expects what was never written)
    expected: list[ExpectedRows] = field(default_factory=list)
    # backup_dir is a deployment's own folder: read in place, never written (not even a verified marker)
    theirs: bool = False
    folder_before: dict[str, tuple[int, int]] = field(default_factory=dict)
    # the database the backups must be of, when the target names none (a check of the drill's refusal)
    database_url: str | None = None
    # ephemeral databases already on the restore server before the drill ran (reference stack)
    ephemeral_before: set[str] = field(default_factory=set)


@pytest.fixture
def drill_plan(tmp_path: Path) -> DrillPlan:
    return DrillPlan(backup_dir=tmp_path / "backups", results=tmp_path / "results")


def _database_url(target: Target) -> str:
    if target.database_url is None:
        skips.missing_config(f"{target.name}: needs a database URL ([database].url_env)")
    return target.database_url


def _takes_its_own_backups(target: Target) -> bool:
    """The reference stack: the gate backs it up itself. A deployment is backed up by its own job."""
    return target.backups is None and target.stack is not None


def _their_backups(target: Target) -> Path:
    """A deployment's backup folder, or a skip saying it is not configured."""
    if target.backups is None:
        skips.missing_config(
            f"{target.name}: needs the deployment's backups ([backups].dir: the folder its scheduled "
            "relay-gate backup writes)"
        )
    return target.backups.dir


def _take_own_backup(target: Target, drill_plan: DrillPlan, recorder: ExchangeRecorder) -> None:
    drill_plan.backup = take_backup(_database_url(target), drill_plan.backup_dir)
    _note_backup(recorder, drill_plan.backup, "taken now by the gate")


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time: equal means untouched."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _ephemeral_databases(target: Target) -> set[str]:
    with psycopg.connect(PgConn.parse(_database_url(target)).dsn, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (EPHEMERAL_PREFIX,)
        ).fetchall()
    return {str(r[0]) for r in rows}


def _note_backup(recorder: ExchangeRecorder, backup: Backup, source: str) -> None:
    m = backup.manifest()
    tables = [{k: t[k] for k in ("schema", "table", "rows", "digest")} for t in m["tables"]]
    recorder.note(
        "backup",
        {"file": backup.dump.name, **m["dump"], "taken_at": m["taken_at"], "versions": m["versions"],
         "totals": m["totals"], "tables": tables, "source": source},
    )  # fmt: skip


@given("the latest backup of the target's database")
def _(target: Target, drill_plan: DrillPlan, recorder: ExchangeRecorder) -> None:
    if _takes_its_own_backups(target):
        _take_own_backup(target, drill_plan, recorder)
        return
    drill_plan.backup_dir, drill_plan.theirs = _their_backups(target), True
    found = list_backups(drill_plan.backup_dir)
    assert found, f"no backup in {drill_plan.backup_dir} ([backups].dir): the deployment's backups stopped"
    drill_plan.backup = found[-1]
    drill_plan.folder_before = _files(drill_plan.backup_dir)
    _note_backup(recorder, drill_plan.backup, f"the deployment's latest, in {drill_plan.backup_dir}")


@given("a copy of the target's latest backup")
def _(target: Target, drill_plan: DrillPlan, recorder: ExchangeRecorder) -> None:
    if _takes_its_own_backups(target):  # the gate's own backup in a temp dir: nothing else to copy
        _take_own_backup(target, drill_plan, recorder)
        return
    # damaged next: a copy in this scenario's temp dir, the deployment's folder stays as it is
    theirs = _their_backups(target)
    drill_plan.backup = copy_latest(theirs, drill_plan.backup_dir)
    _note_backup(recorder, drill_plan.backup, f"a copy of the deployment's latest, from {theirs}")


@given("the gate can back up the target's database after the executes")
def _(target: Target) -> None:
    if not _takes_its_own_backups(target):
        skips.not_applicable(
            f"{target.name}: the gate cannot make a deployment take a backup after its executes, so its "
            "latest backup predates them (that executes reach the audit log is audit.feature's criterion)"
        )


@given("executes made through the API are in the audit log")
def _(http: httpx.Client, dev: Credential, target: Target, drill_plan: DrillPlan) -> None:
    for i in range(EXECUTES):
        ex = admitted_execute(http, dev, notify(f"relay-gate restore drill {i}"), target=target)
        assert ex.response.status_code == 200, (
            f"execute answered {ex.response.status_code}: {ex.response.text[:200]}"
        )
        drill_plan.executed.append(str(ex.json["request_id"]))


@given("a backup of the target database taken now")
def _(target: Target, drill_plan: DrillPlan, recorder: ExchangeRecorder) -> None:
    _take_own_backup(target, drill_plan, recorder)


@given(
    parsers.parse("recovery targets of RPO {rpo} and RTO {rto}, or on a deployment those of its [backups]")
)
def _(target: Target, drill_plan: DrillPlan, rpo: str, rto: str) -> None:
    if target.backups is not None:  # the deployment's own objectives (default 26h and 15m)
        drill_plan.rpo_s, drill_plan.rto_s = target.backups.rpo_s, target.backups.rto_s
        return
    words = {" hours": "h", " hour": "h", " minutes": "m", " minute": "m", " seconds": "s", " second": "s"}
    for long, short in words.items():
        rpo, rto = rpo.replace(long, short), rto.replace(long, short)
    drill_plan.rpo_s, drill_plan.rto_s = parse_duration(rpo), parse_duration(rto)


@then("the latest backup is younger than the RPO target")
def _(drill_plan: DrillPlan) -> None:
    # the backup's age by the scenario's own reading of its manifest, not the drill's account of it
    assert drill_plan.backup is not None
    taken = datetime.fromisoformat(drill_plan.backup.manifest()["taken_at"].replace("Z", "+00:00"))
    age = (datetime.now(UTC) - taken).total_seconds()
    assert age <= drill_plan.rpo_s, (
        f"the latest backup is {human(age)} old (taken {taken.isoformat()}); the RPO target is "
        f"{human(drill_plan.rpo_s)}"
    )


@given(parsers.parse("the backup is then {damage}"))
def _(drill_plan: DrillPlan, damage: str) -> None:
    backup = drill_plan.backup
    assert backup is not None
    assert not drill_plan.theirs, "refusing to damage a deployment's own backup: damage a copy"
    if damage == "corrupted":  # same size, one byte changed in the middle: only the checksum can tell
        with open(backup.dump, "r+b") as f:
            f.seek(backup.dump.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "truncated":
        with open(backup.dump, "r+b") as f:
            f.truncate(backup.dump.stat().st_size // 2)
    elif damage == "missing":
        backup.dump.unlink()
    elif damage == "removed with its manifest":
        shutil.rmtree(backup.dump.parent)
    elif damage == "cut short, its manifest rewritten to match":
        # what a backup job that checksums its dump before pg_dump has finished writing it would record:
        # only pg_restore can tell
        with open(backup.dump, "r+b") as f:
            f.truncate(backup.dump.stat().st_size * 2 // 3)
        sha, size = sha256_of(backup.dump)
        _rewrite_manifest(backup, lambda m: m["dump"].update(sha256=sha, size_bytes=size))
    elif damage == "older than the RPO target, its files copied anew":
        # taken longer ago than the target allows, but its files written just now (as a copy fetched
        # from off-site storage is): only the manifest's snapshot time says how old the backup is
        taken = datetime.now(UTC) - timedelta(seconds=drill_plan.rpo_s + 3600)
        stamp = taken.isoformat(timespec="microseconds").replace("+00:00", "Z")
        _rewrite_manifest(backup, lambda m: m.update(taken_at=stamp))
        for path in (backup.dump, backup.manifest_path):
            os.utime(path)
    else:
        raise AssertionError(f"unknown damage {damage!r}")


def _rewrite_manifest(backup: Backup, change: Any) -> None:
    doc = json.loads(backup.manifest_path.read_text())
    change(doc)
    backup.manifest_path.write_text(json.dumps(doc, indent=2) + "\n")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _other_rows(m: dict[str, Any]) -> None:
    """The first table holding rows gets another digest for its first chunk, consistently (its table
    digest is that of its chunk digests): as if the dump held other rows than the snapshot counted."""
    table = next((t for t in m["tables"] if t["rows"] > 0), None)
    assert table is not None, "the backup holds no row to change"
    table["chunks"][0]["digest"] = _md5(f"other rows than {table['chunks'][0]['digest']}")
    table["digest"] = _md5("".join(c["digest"] for c in table["chunks"]))


def _table_left_out(m: dict[str, Any]) -> None:
    """As if the manifest had been built from a list of tables the dump does not share."""
    gone = m["tables"].pop(0)
    m["totals"] = {"tables": len(m["tables"]), "rows": m["totals"]["rows"] - gone["rows"]}


def _table_the_dump_lacks(m: dict[str, Any]) -> None:
    """As if pg_dump had left a table out (an --exclude-table) that the manifest still promises."""
    digest = _md5(_md5("(1)"))
    m["tables"].append({
        "schema": "public", "table": "relay_gate_drill_never_dumped", "key": ["id"], "rows": 1,
        "digest": _md5(digest), "chunks": [{"from": None, "to": None, "rows": 1, "digest": digest}],
    })  # fmt: skip
    m["totals"] = {"tables": len(m["tables"]), "rows": m["totals"]["rows"] + 1}


@given(parsers.parse("the backup's manifest then {change}"))
def _(target: Target, drill_plan: DrillPlan, change: str) -> None:
    backup = drill_plan.backup
    assert backup is not None
    assert not drill_plan.theirs, "refusing to change a deployment's own backup: change a copy"
    if change == "names another database":
        original = str(backup.manifest()["database"])
        if target.database_url is None:  # the drill is told which database the backups must be of
            drill_plan.database_url = f"postgresql://relay-gate@never-contacted.invalid/{original}"
        _rewrite_manifest(backup, lambda m: m.update(database=f"{original}_other"))
        return
    changes = {
        "says a table held other rows": _other_rows,
        "leaves a table out": _table_left_out,
        "lists a table the dump does not hold": _table_the_dump_lacks,
    }
    assert change in changes, f"unknown change {change!r}"
    _rewrite_manifest(backup, changes[change])


@given("a row the backup never held is expected in the restore")
def _(drill_plan: DrillPlan) -> None:
    # the table with the most rows, looked up by its key: a drill that counts rows instead of finding
    # them by value would find "enough" there
    assert drill_plan.backup is not None
    keyed = [t for t in drill_plan.backup.manifest()["tables"] if t["key"] and t["rows"] > 0]
    if not keyed:
        skips.precondition("the latest backup holds no table with a primary key and rows to look up")
    table = max(keyed, key=lambda t: t["rows"])
    never = f"relay-gate-drill-never-written-{uuid.uuid4().hex}"
    drill_plan.expected.append(ExpectedRows(f"{table['schema']}.{table['table']}", table["key"][0], (never,)))


@given("an older backup beside it, its files written after it")
def _(drill_plan: DrillPlan) -> None:
    # a day older by its timestamp, its files newer (fetched back from storage later, say): the newest
    # backup is the one whose UTC timestamp is latest, whatever the files' times
    latest = drill_plan.backup
    assert latest is not None and not drill_plan.theirs
    m = STEM_RE.match(latest.stem)
    assert m is not None, latest.stem
    older = datetime.strptime(m.group("ts"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) - timedelta(days=1)
    day = drill_plan.backup_dir / older.strftime("%Y-%m-%d")
    day.mkdir(parents=True, exist_ok=True)
    stem = f"{m.group('db')}-{older.strftime('%Y%m%dT%H%M%SZ')}"
    later = time.time() + 3600
    for src, suffix in ((latest.dump, ".dump"), (latest.manifest_path, ".manifest.json")):
        copy = shutil.copyfile(src, day / f"{stem}{suffix}")
        os.utime(copy, (later, later))


@when("the drill restores the latest backup into an ephemeral database", target_fixture="drill")
def _(target: Target, drill_plan: DrillPlan, recorder: ExchangeRecorder) -> DrillResult:
    expected = list(drill_plan.expected)
    if drill_plan.executed:
        expected.append(ExpectedRows("public.audit_log", "request_id", tuple(drill_plan.executed)))
    if target.controllable:  # restored on the target's server: what is there before the drill
        drill_plan.ephemeral_before = _ephemeral_databases(target)
    result = run_drill(
        DrillOptions(
            # on a deployment only names the database the backups must be of, when given
            database_url=target.database_url or drill_plan.database_url,
            backup_dir=drill_plan.backup_dir,
            restore_to="same" if target.controllable else restore_to(),
            rto_s=drill_plan.rto_s,
            rpo_s=drill_plan.rpo_s,
            run_id="feature",
            expected=expected,
        )
    )
    path = write_results(result, drill_plan.results, mark=not drill_plan.theirs)
    recorder.note("drill", json.loads(path.read_text()))  # redacted, exactly as drill.json says it
    return result


@then("the drill passes")
def _(drill: DrillResult) -> None:
    assert drill.passed, f"the drill failed: {drill.reason}"
    assert drill.doc["verdict"] == "PASSED"


@then("every table's row count and digest in the restore match the manifest")
def _(drill: DrillResult, drill_plan: DrillPlan) -> None:
    tables = drill.doc["tables"]
    assert tables, "the drill compared no table"
    # held to the backup's own manifest, not to the drill's account of itself: a drill that leaves a
    # table out of its comparison must not pass
    assert drill_plan.backup is not None
    restored = drill.backup.dump if drill.backup is not None else None
    assert restored == drill_plan.backup.dump, (
        f"the drill restored {restored}; the latest backup is {drill_plan.backup.dump}"
    )
    promised = {f"{t['schema']}.{t['table']}" for t in drill_plan.backup.manifest()["tables"]}
    unchecked = promised - {t["table"] for t in tables}
    assert not unchecked, f"the drill did not compare {sorted(unchecked)}, which the backup holds"
    bad = [
        f"{t['table']}: {t['status']} (source {t['source']}, restored {t['restored']})"
        for t in tables
        if not t["match"]
    ]
    assert not bad, "; ".join(bad)
    for t in tables:
        assert (
            t["source"]["rows"] == t["restored"]["rows"] and t["source"]["digest"] == t["restored"]["digest"]
        )


@then("the restore finished within the RTO target, measured from the checksum to the restored database")
def _(drill: DrillResult, drill_plan: DrillPlan) -> None:
    rto, phases = drill.doc["rto"], drill.doc["phases"]
    # checksum + create database + pg_restore: starting a throwaway server and verifying the restore
    # are the drill's own work, not part of a recovery
    recovery = sum(phases[p]["duration_s"] for p in ("checksum", "create_db", "restore"))
    assert rto["measured_s"] is not None and abs(rto["measured_s"] - recovery) <= 0.002, (
        f"RTO measured {rto['measured_s']} s, but checksum + create_db + restore took {recovery:.3f} s "
        f"(phases: { {k: v['duration_s'] for k, v in phases.items()} })"
    )
    assert rto["target_s"] == drill_plan.rto_s, rto
    assert recovery <= drill_plan.rto_s and rto["passed"], (
        f"the restore took {recovery:.3f} s; the RTO target is {drill_plan.rto_s} s"
    )


@then(
    "the passing drill marks a backup of the gate's own verified, and leaves a deployment's folder as it was"
)
def _(drill: DrillResult, drill_plan: DrillPlan) -> None:
    assert drill_plan.backup is not None
    if drill_plan.theirs:  # the deployment's folder: read, never written
        assert drill.doc.get("verified_marker") is None
        after = _files(drill_plan.backup_dir)
        changed = sorted(k for k in after.keys() | drill_plan.folder_before.keys()
                         if after.get(k) != drill_plan.folder_before.get(k))  # fmt: skip
        assert not changed, f"the drill changed the deployment's backup folder: {changed[:5]}"
        return
    marker = drill_plan.backup.verified_path  # beside the backup, where retention looks for it
    assert marker.is_file(), f"the passing drill left no verified marker beside the backup ({marker})"
    doc = json.loads(marker.read_text())
    sha = drill_plan.backup.manifest()["dump"]["sha256"]
    assert (doc.get("schema"), doc.get("backup"), doc.get("sha256")) == (
        "relay-gate/backup-verified@1",
        drill_plan.backup.dump.name,
        sha,
    ), doc
    assert doc.get("drill_run_id") == drill.doc["run_id"] and doc.get("verified_at"), doc


@then("the restored audit log holds at least the executes made through the API")
def _(drill: DrillResult, drill_plan: DrillPlan) -> None:
    # by request id, not by row count: a restore with as many rows but other content must not pass
    audit = next((t for t in drill.doc["tables"] if t["table"].endswith(".audit_log")), None)
    assert audit is not None, "no audit_log table was restored"
    assert audit["match"], f"audit_log differs: {audit}"
    found = next((e for e in drill.doc.get("expected_rows") or [] if e["column"] == "request_id"), None)
    assert found is not None, "the drill did not look for the executes' request ids in the restore"
    assert found["wanted"] == len(drill_plan.executed) >= 1, found
    assert found["found"] == found["wanted"], (
        f"{found['wanted'] - found['found']} of {found['wanted']} request ids made through the API are not "
        f"in the restored audit log: {found['missing'][:5]} {found['error'] or ''}"
    )


@then(parsers.parse('the drill fails saying "{reason}"'))
def _(drill: DrillResult, reason: str) -> None:
    assert not drill.passed, "the drill passed"
    assert drill.exit_code == 1, f"exit {drill.exit_code} (expected 1, a failed criterion): {drill.reason}"
    assert reason in drill.reason, f"the reason {drill.reason!r} does not say {reason!r}"


@then("the drill results say FAILED with that reason")
def _(drill: DrillResult, drill_plan: DrillPlan) -> None:
    doc = json.loads((drill_plan.results / "drill" / "drill.json").read_text())
    assert doc["schema"] == "relay-gate/drill@1"
    assert (doc["verdict"], doc["reason"], doc["exit_code"]) == ("FAILED", drill.reason, 1)
    assert "\n" not in doc["reason"]
    # retention keeps the newest verified backup as the last one known to restore: never a failed one
    marked = doc["verified_marker"]
    assert marked is None, f"the failed drill marked its backup verified: {marked}"
    if drill_plan.backup is not None:
        marker = drill_plan.backup.verified_path
        assert not marker.exists(), f"the failed drill marked its backup verified: {marker}"


@then(parsers.parse('the drill fails with "{reason}" among its failures'))
def _(drill: DrillResult, reason: str) -> None:
    assert not drill.passed, "the drill passed"
    assert drill.exit_code == 1, f"exit {drill.exit_code} (expected 1, a failed criterion): {drill.reason}"
    failures = drill.doc["failures"]
    assert any(reason in f for f in failures), f"no failure says {reason!r}: {failures}"


@then("the backup was restored and compared all the same")
def _(drill: DrillResult) -> None:
    # the RPO is judged after the restore: an old backup is still proven restorable (or not)
    phases = drill.doc["phases"]
    ran = {p: phases[p]["ok"] for p in ("checksum", "create_db", "restore", "verify") if p in phases}
    assert ran == {"checksum": True, "create_db": True, "restore": True, "verify": True}, (
        f"the drill stopped before restoring and comparing the backup: phases {ran}; {drill.reason}"
    )
    assert drill.doc["tables"] and drill.doc["summary"], "the drill compared no table"


@then("the drill restored the newest backup by its timestamp")
def _(drill: DrillResult, drill_plan: DrillPlan) -> None:
    assert drill_plan.backup is not None
    picked = (drill.doc.get("backup") or {}).get("file")
    assert picked == str(drill_plan.backup.dump), (
        f"the drill restored {picked}; the newest backup by its timestamp is {drill_plan.backup.dump}"
    )


@then("the restore ran as one transaction that stops at the first error")
def _(drill: DrillResult) -> None:
    # nothing half-restored: the first error rolls everything back (the database is dropped anyway)
    assert "restore" in drill.doc["phases"], f"the drill did not get to pg_restore: {drill.reason}"
    restore = drill.doc["restore"]
    assert restore is not None and restore["jobs"] == 1, restore
    command = restore["command"]
    missing = [flag for flag in ("--single-transaction", "--exit-on-error") if flag not in command]
    assert not missing, f"pg_restore ran without {missing}: {command}"
    assert restore["strategy"] == "single transaction", restore


@then("no ephemeral database is left behind")
def _(drill: DrillResult, target: Target, drill_plan: DrillPlan) -> None:
    created = drill.doc["restore_target"]
    assert not created["created"] or created["dropped"], f"{created['database']} was not dropped"
    if target.controllable:  # restored on the target's server: look there, for any this drill made
        left = _ephemeral_databases(target) - drill_plan.ephemeral_before
        assert not left, f"ephemeral databases left on the server: {sorted(left)}"
