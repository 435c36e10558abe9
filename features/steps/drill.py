"""Steps for features/restore_drill.feature: find the target's latest backup, damage a copy, drill it.

On the reference stack the gate backs up the stack's database itself (``take_backup`` dumps one
read-only snapshot into a temp dir) and restores on the stack's own server. On a deployment the latest
backup is the newest in ``[backups].dir`` (target.backups), read in place and never written (no
verified marker either); the checks that damage a backup damage a copy in a temp dir
(gate/drill_deployment.py ``copy_latest``), and the restore goes to a local embedded PostgreSQL (or the
server ``RELAY_GATE_RESTORE_TO`` names). The drill always drops what it created.

Notes for RESTORE-DRILL-REPORT.md: ``backup`` (file, SHA-256, size, tables and rows of the manifest)
and ``drill`` (the relay-gate/drill@1 document: per-table counts and digests, source vs restored, the
duration of each phase, RTO/RPO measured vs target, verdict and reason).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pytest_bdd import given, parsers, then, when

from features import skips
from features.recording import Recorder
from features.steps.common import admitted_execute, notify
from gate.backup import Backup, list_backups, take_backup
from gate.drill import (
    DEFAULT_RPO_S,
    DEFAULT_RTO_S,
    EPHEMERAL_PREFIX,
    DrillOptions,
    DrillResult,
    human,
    run_drill,
)
from gate.drill_compare import ExpectedRows
from gate.drill_deployment import copy_latest, restore_to
from gate.drill_results import write_results
from gate.durations import parse_duration
from gate.fingerprint import PgConn
from gate.target import Credential, Target

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
    # backup_dir is a deployment's own folder: read in place, never written (not even a verified marker)
    theirs: bool = False


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


def _take_own_backup(target: Target, drill_plan: DrillPlan, recorder: Recorder) -> None:
    drill_plan.backup = take_backup(_database_url(target), drill_plan.backup_dir)
    _note_backup(recorder, drill_plan.backup, "taken now by the gate")


def _note_backup(recorder: Recorder, backup: Backup, source: str) -> None:
    m = backup.manifest()
    tables = [{k: t[k] for k in ("schema", "table", "rows", "digest")} for t in m["tables"]]
    recorder.note(
        "backup",
        {"file": backup.dump.name, **m["dump"], "taken_at": m["taken_at"], "versions": m["versions"],
         "totals": m["totals"], "tables": tables, "source": source},
    )  # fmt: skip


@given("the latest backup of the target's database")
def _(target: Target, drill_plan: DrillPlan, recorder: Recorder) -> None:
    if _takes_its_own_backups(target):
        _take_own_backup(target, drill_plan, recorder)
        return
    drill_plan.backup_dir, drill_plan.theirs = _their_backups(target), True
    found = list_backups(drill_plan.backup_dir)
    assert found, f"no backup in {drill_plan.backup_dir} ([backups].dir): the deployment's backups stopped"
    drill_plan.backup = found[-1]
    _note_backup(recorder, drill_plan.backup, f"the deployment's latest, in {drill_plan.backup_dir}")


@given("a copy of the target's latest backup")
def _(target: Target, drill_plan: DrillPlan, recorder: Recorder) -> None:
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
def _(target: Target, drill_plan: DrillPlan, recorder: Recorder) -> None:
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
    else:
        raise AssertionError(f"unknown damage {damage!r}")


@when("the drill restores the latest backup into an ephemeral database", target_fixture="drill")
def _(target: Target, drill_plan: DrillPlan, recorder: Recorder) -> DrillResult:
    result = run_drill(
        DrillOptions(
            # on a deployment only names the database the backups must be of, when given
            database_url=target.database_url,
            backup_dir=drill_plan.backup_dir,
            restore_to="same" if target.controllable else restore_to(),
            rto_s=drill_plan.rto_s,
            rpo_s=drill_plan.rpo_s,
            run_id="feature",
            expected=[ExpectedRows("public.audit_log", "request_id", tuple(drill_plan.executed))]
            if drill_plan.executed
            else [],
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


@then("the restore finished within the RTO target")
def _(drill: DrillResult) -> None:
    rto = drill.doc["rto"]
    assert rto["passed"], f"the restore took {rto['measured_s']} s; the RTO target is {rto['target_s']} s"


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


@then("no ephemeral database is left behind")
def _(drill: DrillResult, target: Target) -> None:
    created = drill.doc["restore_target"]
    assert not created["created"] or created["dropped"], f"{created['database']} was not dropped"
    if target.controllable:  # restored on the target's server: look there
        with psycopg.connect(PgConn.parse(_database_url(target)).dsn, connect_timeout=5) as conn:
            left: list[Any] = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (EPHEMERAL_PREFIX,)
            ).fetchall()
        assert not left, f"ephemeral databases left on the server: {left}"
