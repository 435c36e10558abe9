"""Deliberate defects of the backup and restore-drill tooling: how the selftest proves the drill can fail.

gate/proof/catalogue.py bends the reference service; these bend relay-gate's own ``take_backup`` and
``run_drill`` — the mistakes a backup job or a drill script plausibly ships with. A drill that cannot
tell a good backup from a broken one proves nothing, so the restore-drill scenarios must fail against
each of them.

They are switched in only by this module acting as a pytest plugin, for one test session:
``pytest features/ -p gate.proof.defects_drill --drill-defect NAME`` (what ``relay-gate selftest`` runs).
The plugin patches module attributes of gate.drill.backup / gate.drill.restore for that session and undoes it
at the end; no setting, flag or environment variable of ``relay-gate backup`` or ``relay-gate drill`` reaches
them. A patch replaces the name where its caller looks it up at call time: ``fingerprint`` (defined in
gate/drill/fingerprint.py) as gate.drill.backup's ``_write_backup`` sees it, ``compare_tables`` (defined in
gate/drill/compare.py) as gate.drill.restore's ``_Drill`` sees it, a method of ``_Drill`` itself, or
``earns_marker`` / ``mark_verified`` as gate.drill.record's ``write_results`` sees them.

Each is caught by scenarios of features/restore_drill.feature (``caught_by``, exactly the scenarios that
fail against it). Mistakes that no restore drill can show — a digest over rows in scan order, a manifest
written before its dump is renamed, retention removing the newest verified backup — are caught by the unit
tests of tests/gate/test_backup.py and tests/gate/test_drill.py instead (docs/promises/drill.toml says
which).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql

from gate.drill import backup, layout
from gate.drill import record as drill_results
from gate.drill import restore as drill
from gate.drill.fingerprint import connect
from gate.drill.layout import Backup
from gate.errors import CriterionFailed

if TYPE_CHECKING:
    import pytest

    from gate.drill.compare import ExpectedRows
    from gate.drill.fingerprint import PgConn, TablePlan, TablePrint
    from gate.drill.restore import DrillResult

# the scenarios that catch them (names as in features/restore_drill.feature)
D_RESTORES = "The latest backup restores and matches its source table by table, within the RPO and RTO"
D_SURVIVE = "Executes made through the API survive the restore"
D_CORRUPTED = "A corrupted backup fails the drill, saying why"
D_TRUNCATED = "A truncated backup fails the drill, saying why"
D_MISSING = "A missing backup fails the drill, saying why"
D_NO_BACKUP = "No backup at all fails the drill, saying why"
D_OTHER_ROWS = "A backup whose rows differ from its manifest fails the drill, saying why"
D_EXTRA = "A restored table the manifest does not list fails the drill, saying why"
D_LACKS = "A table the manifest lists but the restore lacks fails the drill, saying why"
D_NEVER_HELD = "Rows the backup never held fail the drill, looked up by value and not by count"
D_OTHER_DB = "A backup of another database fails the drill, saying why"
D_OLD = "A backup older than the RPO target fails the drill, and is still restored and compared"
D_NEWEST = "The drill restores the newest backup by its timestamp, not the one written last"
D_UNRESTORABLE = "A backup that cannot be restored fails the drill, and its ephemeral database is dropped"

# The relay's tables when a drill script was first written: what a hard-coded table list would hold.
FIXED_TABLES = ("public.alembic_version", "public.audit_log")
LIVE_ROWS = 10  # rows a busy source commits while the backup's counts are being read


@dataclass(frozen=True)
class DrillDefect:
    """One deliberate defect of the tooling; ``install`` patches it in through a MonkeyPatch."""

    name: str
    summary: str
    install: Callable[[pytest.MonkeyPatch], None]
    caught_by: tuple[str, ...] = ()  # the scenario(s) written to catch it: they must fail against it
    area: str = "drill"
    needs_control: bool = False


def _skipped_table(tables: list[TablePlan]) -> TablePlan | None:
    return next((t for t in tables if t.name == drill.BULK_TABLE), tables[-1] if tables else None)


def _dump_skips_a_table(mp: pytest.MonkeyPatch) -> None:
    write = backup._write_backup

    def write_without_one(
        src: PgConn, conn: Any, tables: list[TablePlan], argv: list[str], *args: Any, **kwargs: Any
    ) -> Backup:
        # an --exclude-table added to shrink the nightly dump; the manifest is still built from the
        # catalogue, so it goes on promising the table
        skipped = _skipped_table(tables)
        if skipped is not None:
            argv = [*argv, f"--exclude-table={skipped.qualified}"]
        return write(src, conn, tables, argv, *args, **kwargs)

    mp.setattr(backup, "_write_backup", write_without_one)


_live_ids = itertools.count(1)


def _live_traffic(src: PgConn) -> None:
    """Commit what a busy source commits during any backup: a few new rows, after the snapshot."""
    first = 900_000_000 + next(_live_ids) * 1_000
    with connect(src, "relay-gate selftest: live traffic") as conn:
        conn.execute(
            f"INSERT INTO {drill.BULK_TABLE} SELECT g, 'live', 'execute', md5(g::text), 0, now()"  # noqa: S608 - constants
            " FROM generate_series(%s::bigint, %s::bigint) AS g",
            (first, first + LIVE_ROWS - 1),
        )


def _counted_outside_the_snapshot(mp: pytest.MonkeyPatch) -> None:
    fingerprint = backup.fingerprint

    def counted_live(
        src: PgConn, plans: list[TablePlan], *, snapshot: str | None = None, **kwargs: Any
    ) -> list[TablePrint]:
        if snapshot is None:  # not the backup's manifest (the drill's own counts stay as they are)
            return fingerprint(src, plans, **kwargs)
        # The counts read the live database instead of importing the dump's snapshot. A real source
        # takes writes meanwhile; the reference stack is idle, so its traffic is committed here. The
        # clean backup is immune to exactly this (tests/gate/test_backup.py, a concurrent writer).
        _live_traffic(src)
        return fingerprint(src, plans, snapshot=None, **kwargs)

    # gate.drill.backup imports fingerprint from gate.drill.fingerprint: _write_backup resolves it in
    # gate.drill.backup
    mp.setattr(backup, "fingerprint", counted_live)


def _compares_a_fixed_table_list(mp: pytest.MonkeyPatch) -> None:
    compare = drill.compare_tables

    def compare_listed(
        manifest_tables: list[dict[str, Any]], restored: list[TablePrint]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        # "for t in audit_log alembic_version": tables added to the schema later are never compared
        listed = [m for m in manifest_tables if f"{m['schema']}.{m['table']}" in FIXED_TABLES]
        return compare(listed, [p for p in restored if p.plan.qualified in FIXED_TABLES])

    # gate.drill.restore imports compare_tables from gate.drill.compare: _Drill._run resolves it in
    # gate.drill.restore
    mp.setattr(drill, "compare_tables", compare_listed)


# -- the drill's checksum and pick ------------------------------------------------------------------


def _checks_the_size_only(mp: pytest.MonkeyPatch) -> None:
    def checksum(self: Any, b: Backup, dump: dict[str, Any]) -> None:
        # "the size matches, good enough" (hashing gigabytes was slow): a flipped byte goes unseen
        if not b.dump.is_file():
            raise CriterionFailed(f"backup missing: {b.dump} (named by its manifest) does not exist")
        size = b.dump.stat().st_size
        self.doc["backup"].update(size_actual=size, checksum_ok=False)
        if size != int(dump.get("size_bytes", 0)):
            raise CriterionFailed(f"truncated dump: {b.dump.name} has {size} bytes")
        self.doc["backup"]["checksum_ok"] = True

    mp.setattr(drill._Drill, "_checksum", checksum)


def _never_compares_the_size(mp: pytest.MonkeyPatch) -> None:
    def checksum(self: Any, b: Backup, dump: dict[str, Any]) -> None:
        # the manifest's size_bytes is recorded but never compared: a dump cut short is "a checksum
        # mismatch" like any other, and nobody learns that the backup job ran out of space
        if not b.dump.is_file():
            raise CriterionFailed(f"backup missing: {b.dump} (named by its manifest) does not exist")
        sha, size = backup.sha256_of(b.dump)
        self.doc["backup"].update(sha256_actual=sha, size_actual=size, checksum_ok=sha == dump.get("sha256"))
        if sha != dump.get("sha256"):
            raise CriterionFailed(f"checksum mismatch: {b.dump.name} has sha256 {sha[:16]}…")

    mp.setattr(drill._Drill, "_checksum", checksum)


def _missing_dump_is_an_io_error(mp: pytest.MonkeyPatch) -> None:
    checksum = drill._Drill._checksum

    def hashed(self: Any, b: Backup, dump: dict[str, Any]) -> None:
        # no existence check: the dump is opened right away, and a missing one is an OSError, which the
        # drill files as infrastructure (exit 5) rather than the failed criterion it is
        with open(b.dump, "rb"):
            pass
        checksum(self, b, dump)

    mp.setattr(drill._Drill, "_checksum", hashed)


def _passes_without_a_backup(mp: pytest.MonkeyPatch) -> None:
    run = drill._Drill._run

    def each_backup(self: Any) -> None:
        # "for backup in latest[:1]: ...": with no backup the loop runs zero times and nothing fails
        if self.opts.backup_dir.is_dir() and not layout.list_backups(self.opts.backup_dir):
            return
        run(self)

    mp.setattr(drill._Drill, "_run", each_backup)


def _picks_the_last_written(mp: pytest.MonkeyPatch) -> None:
    def by_mtime(backup_dir: Path) -> list[Backup]:
        # "ls -t | head -1": the backup whose files were written last, not the newest snapshot
        return sorted(layout.list_backups(backup_dir), key=lambda b: b.manifest_path.stat().st_mtime)

    # gate.drill.restore imports list_backups from gate.drill.backup: _Drill._latest resolves it in
    # gate.drill.restore
    mp.setattr(drill, "list_backups", by_mtime)


def _ignores_the_database(mp: pytest.MonkeyPatch) -> None:
    def any_database(self: Any, manifest: dict[str, Any]) -> None:
        # the manifest's database is recorded, never compared with the source's
        if self.src is None:
            self.doc["source"] = {**(manifest.get("source") or {}), "from": "the backup's manifest"}

    mp.setattr(drill._Drill, "_check_database", any_database)


# -- the comparison -------------------------------------------------------------------------------------


def _compares_row_counts_only(mp: pytest.MonkeyPatch) -> None:
    compare = drill.compare_tables

    def by_count(
        manifest_tables: list[dict[str, Any]], restored: list[TablePrint]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        # digests are recorded for the report, but a table "matches" when its row count does
        rows, problems = compare(manifest_tables, restored)
        for r in rows:
            if r["status"] == "differs" and r["rows_match"]:
                r.update(status="match", match=True, digest_match=True, chunks_differing=[])
        return rows, [p for p in problems if "content differs" not in p]

    mp.setattr(drill, "compare_tables", by_count)


def _ignores_extra_tables(mp: pytest.MonkeyPatch) -> None:
    compare = drill.compare_tables

    def manifest_driven(
        manifest_tables: list[dict[str, Any]], restored: list[TablePrint]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        # the loop runs over the manifest's tables only: a restored table it does not list is never seen
        listed = {f"{m['schema']}.{m['table']}" for m in manifest_tables}
        return compare(manifest_tables, [p for p in restored if p.plan.qualified in listed])

    mp.setattr(drill, "compare_tables", manifest_driven)


def _skips_missing_tables(mp: pytest.MonkeyPatch) -> None:
    compare = drill.compare_tables

    def restore_driven(
        manifest_tables: list[dict[str, Any]], restored: list[TablePrint]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        # the loop runs over the restored tables: one the manifest promises but the dump lacks is skipped
        there = {p.plan.qualified for p in restored}
        return compare([m for m in manifest_tables if f"{m['schema']}.{m['table']}" in there], restored)

    mp.setattr(drill, "compare_tables", restore_driven)


def _counts_expected_rows(mp: pytest.MonkeyPatch) -> None:
    def counted(target: PgConn, expected: list[ExpectedRows]) -> list[dict[str, Any]]:
        # "the table has at least as many rows as we expect": a restore with other content passes
        out = []
        with connect(target, "relay-gate drill", role="restored database") as conn:
            for e in expected:
                schema, _, table = e.table.partition(".")
                q = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
                n = int(conn.execute(q).fetchone()[0])  # type: ignore[index]
                found = min(n, len(e.values))
                out.append({"table": e.table, "column": e.column, "wanted": len(e.values), "found": found,
                            "missing": [], "error": None})  # fmt: skip
        return out

    # gate.drill.restore imports check_expected from gate.drill.compare: _Drill._run resolves it in
    # gate.drill.restore
    mp.setattr(drill, "check_expected", counted)


# -- the restore and the drop ---------------------------------------------------------------------------


def _keeps_the_database_after_a_failed_restore(mp: pytest.MonkeyPatch) -> None:
    restore, drop = drill._Drill._restore, drill._Drill._drop

    def restore_noting_failure(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            restore(self, *args, **kwargs)
        except Exception:
            self._restore_failed = True
            raise

    def drop_after_success(self: Any, admin: PgConn, name: str) -> None:
        # the drop sits after the restore instead of in a finally: a failed restore leaves its database
        if not getattr(self, "_restore_failed", False):
            drop(self, admin, name)

    mp.setattr(drill._Drill, "_restore", restore_noting_failure)
    mp.setattr(drill._Drill, "_drop", drop_after_success)


def _restores_outside_one_transaction(mp: pytest.MonkeyPatch) -> None:
    argv_of = drill.restore_argv

    def without_single_transaction(*args: Any, **kwargs: Any) -> list[str]:
        # --single-transaction dropped ("it was slower"): the first error stops pg_restore, but every
        # table restored before it stays committed
        return [a for a in argv_of(*args, **kwargs) if a != "--single-transaction"]

    mp.setattr(drill, "restore_argv", without_single_transaction)


# -- RPO, RTO and the verified marker -------------------------------------------------------------------


def _rpo_from_the_file_time(mp: pytest.MonkeyPatch) -> None:
    rpo = drill._Drill._rpo

    def from_mtime(self: Any, taken_at: str) -> None:
        # the backup's age read from its dump's modification time: a copy fetched from storage is "new"
        assert self.backup is not None
        b = self.backup  # the manifest's time when the dump is gone (the checksum phase says so next)
        file = b.dump if b.dump.exists() else b.manifest_path
        written = datetime.fromtimestamp(os.stat(file).st_mtime, UTC)
        rpo(self, written.isoformat().replace("+00:00", "Z"))
        self.doc["rpo"]["taken_at"] = taken_at

    mp.setattr(drill._Drill, "_rpo", from_mtime)


def _rpo_before_the_restore(mp: pytest.MonkeyPatch) -> None:
    rpo = drill._Drill._rpo

    def fail_fast(self: Any, taken_at: str) -> None:
        # "too old, why bother restoring it": the drill stops, and nobody learns whether it restores
        rpo(self, taken_at)
        if not self.doc["rpo"]["passed"]:
            self.failures.pop()  # said once, by the raise
            raise CriterionFailed(
                f"RPO exceeded: the latest backup is {drill.human(self.doc['rpo']['measured_s'])} old, "
                f"target {drill.human(self.opts.rpo_s)}"
            )

    mp.setattr(drill._Drill, "_rpo", fail_fast)


def _rto_counts_verification(mp: pytest.MonkeyPatch) -> None:
    # every phase up to the comparison summed: the drill's own verification inflates the recovery time
    # the RTO target is about
    mp.setattr(drill, "RTO_PHASES", (*drill.RTO_PHASES, "verify"))


def _marks_backups_that_did_not_match(mp: pytest.MonkeyPatch) -> None:
    def restored(result: DrillResult) -> bool:
        # the marker is written once pg_restore succeeded, before the comparison is judged
        return bool(result.doc["phases"].get("restore", {}).get("ok"))

    # gate.drill.record.write_results looks earns_marker up at call time
    mp.setattr(drill_results, "earns_marker", restored)


def _marker_beside_the_results(mp: pytest.MonkeyPatch) -> None:
    mark = drill_results.mark_verified

    def into_results(b: Backup, *, run_id: str, sha256: str, drill_json: Path | None) -> Path:
        # the marker goes with the drill's results, where retention never looks for it
        assert drill_json is not None
        drill_json.parent.mkdir(parents=True, exist_ok=True)
        elsewhere = Backup(b.stem, b.day, b.dump, drill_json.parent / b.manifest_path.name)
        return mark(elsewhere, run_id=run_id, sha256=sha256, drill_json=drill_json)

    mp.setattr(drill_results, "mark_verified", into_results)


_CATALOGUE = (
    DrillDefect("backup-dump-skips-a-table",
                "pg_dump leaves bulk_events out (an --exclude-table to shrink nightly dumps) while the "
                "manifest still lists it",
                _dump_skips_a_table, caught_by=(D_RESTORES, D_SURVIVE)),
    DrillDefect("manifest-counted-outside-snapshot",
                "the manifest's counts and digests read the live database, not the dump's snapshot: rows "
                "committed meanwhile are counted but not dumped",
                _counted_outside_the_snapshot, caught_by=(D_RESTORES, D_SURVIVE)),
    DrillDefect("drill-compares-a-fixed-table-list",
                "the drill compares a hard-coded list of tables (audit_log, alembic_version): a table "
                "added later is restored but never checked",
                _compares_a_fixed_table_list, caught_by=(D_RESTORES, D_LACKS)),
    DrillDefect("drill-checks-the-size-not-the-checksum",
                "the drill compares the dump's size with its manifest, never its SHA-256: a dump with a "
                "changed byte is restored",
                _checks_the_size_only, caught_by=(D_CORRUPTED,)),
    DrillDefect("drill-never-compares-the-size",
                "the manifest's size_bytes is never compared: a dump cut short is reported as a checksum "
                "mismatch, not as truncated",
                _never_compares_the_size, caught_by=(D_TRUNCATED,)),
    DrillDefect("drill-missing-dump-is-an-io-error",
                "a dump missing beside its manifest fails as an OSError: exit 5 (infrastructure) instead of "
                "the failed criterion it is",
                _missing_dump_is_an_io_error, caught_by=(D_MISSING,)),
    DrillDefect("drill-passes-without-a-backup",
                "an empty backup folder passes the drill: the loop over its backups runs zero times",
                _passes_without_a_backup, caught_by=(D_NO_BACKUP,)),
    DrillDefect("drill-picks-the-last-written-backup",
                "the drill restores the backup whose files were written last (ls -t), not the newest by "
                "its UTC timestamp",
                _picks_the_last_written, caught_by=(D_NEWEST,)),
    DrillDefect("drill-ignores-the-backups-database",
                "the manifest's database is never compared with the source's: another database's backup is "
                "restored and passes",
                _ignores_the_database, caught_by=(D_OTHER_DB,)),
    DrillDefect("drill-compares-row-counts-only",
                "a table matches when its row count does: the digests are reported but never compared",
                _compares_row_counts_only, caught_by=(D_OTHER_ROWS,)),
    DrillDefect("drill-ignores-extra-tables",
                "the comparison loops over the manifest's tables only: a restored table it does not list is "
                "never reported",
                _ignores_extra_tables, caught_by=(D_EXTRA,)),
    DrillDefect("drill-skips-tables-missing-from-the-restore",
                "the comparison loops over the restored tables: a table the manifest promises but the dump "
                "lacks is skipped",
                _skips_missing_tables, caught_by=(D_LACKS,)),
    DrillDefect("drill-counts-expected-rows",
                "rows that must be in the restore are counted, not looked up by value: a table with as many "
                "rows but other content passes",
                _counts_expected_rows, caught_by=(D_NEVER_HELD,)),
    DrillDefect("drill-keeps-the-database-after-a-failed-restore",
                "the ephemeral database is dropped after a successful restore only, not in a finally: a "
                "failed restore leaves it on the server",
                _keeps_the_database_after_a_failed_restore, caught_by=(D_UNRESTORABLE,)),
    DrillDefect("restore-not-in-one-transaction",
                "pg_restore runs without --single-transaction: the first error stops it, but what it "
                "restored before stays committed",
                _restores_outside_one_transaction, caught_by=(D_UNRESTORABLE,)),
    DrillDefect("rpo-from-the-dump-file-time",
                "the RPO is the age of the dump file (its mtime), not of the manifest's snapshot: a copy "
                "fetched from storage is always fresh",
                _rpo_from_the_file_time, caught_by=(D_OLD,)),
    DrillDefect("rpo-checked-before-the-restore",
                "a backup older than the RPO target fails the drill before it is restored: nobody learns "
                "whether it would restore",
                _rpo_before_the_restore, caught_by=(D_OLD,)),
    DrillDefect("rto-counts-verification",
                "the RTO counts the drill's own verification too, not just checksum + create database + "
                "pg_restore",
                _rto_counts_verification, caught_by=(D_RESTORES,)),
    DrillDefect("drill-marks-backups-that-did-not-match",
                "the verified marker is written once pg_restore succeeded, before the comparison is judged: "
                "retention keeps a backup that did not match",
                _marks_backups_that_did_not_match,
                caught_by=(D_OTHER_ROWS, D_EXTRA, D_LACKS, D_NEVER_HELD, D_OLD)),
    DrillDefect("verified-marker-beside-the-results",
                "a passing drill writes its verified marker with drill.json, not beside the backup: "
                "retention never sees it",
                _marker_beside_the_results, caught_by=(D_RESTORES,)),
)  # fmt: skip

DRILL_DEFECTS: dict[str, DrillDefect] = {d.name: d for d in _CATALOGUE}


# -- the pytest plugin (``-p gate.proof.defects_drill``) ---------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("relay-gate").addoption(
        "--drill-defect",
        choices=sorted(DRILL_DEFECTS),
        default=None,
        help="run the backup and drill tooling with this deliberate defect of gate/proof/defects_drill.py",
    )


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--drill-defect")
    if not name:
        return
    import pytest

    patcher = pytest.MonkeyPatch()
    DRILL_DEFECTS[name].install(patcher)
    config.add_cleanup(patcher.undo)
