"""Deliberate defects of the backup and restore-drill tooling: how the selftest proves the drill can fail.

gate/defects.py bends the reference service; these bend relay-gate's own ``take_backup`` and
``run_drill`` — the mistakes a backup job or a drill script plausibly ships with. A drill that cannot
tell a good backup from a broken one proves nothing, so the restore-drill scenarios must fail against
each of them.

They are switched in only by this module acting as a pytest plugin, for one test session:
``pytest features/ -p gate.drill_defects --drill-defect NAME`` (what ``relay-gate selftest`` runs).
The plugin patches module attributes of gate.backup / gate.drill for that session and undoes it at the
end; no setting, flag or environment variable of ``relay-gate backup`` or ``relay-gate drill`` reaches
them. A patch replaces the name where its caller looks it up at call time: ``fingerprint`` (defined in
gate/fingerprint.py) as gate.backup's ``_write_backup`` sees it, ``compare_tables`` (defined in
gate/drill_compare.py) as gate.drill's ``_Drill`` sees it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate import backup, drill
from gate.fingerprint import connect

if TYPE_CHECKING:
    import pytest

    from gate.fingerprint import PgConn, TablePlan, TablePrint

# the scenarios that catch them (names as in features/restore_drill.feature)
D_RESTORES = "The latest backup restores and matches its source table by table, within the RPO and RTO"
D_SURVIVE = "Executes made through the API survive the restore"

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
    ) -> backup.Backup:
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

    # gate.backup imports fingerprint from gate.fingerprint: _write_backup resolves it in gate.backup
    mp.setattr(backup, "fingerprint", counted_live)


def _compares_a_fixed_table_list(mp: pytest.MonkeyPatch) -> None:
    compare = drill.compare_tables

    def compare_listed(
        manifest_tables: list[dict[str, Any]], restored: list[TablePrint]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        # "for t in audit_log alembic_version": tables added to the schema later are never compared
        listed = [m for m in manifest_tables if f"{m['schema']}.{m['table']}" in FIXED_TABLES]
        return compare(listed, [p for p in restored if p.plan.qualified in FIXED_TABLES])

    # gate.drill imports compare_tables from gate.drill_compare: _Drill._run resolves it in gate.drill
    mp.setattr(drill, "compare_tables", compare_listed)


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
                _compares_a_fixed_table_list, caught_by=(D_RESTORES,)),
)  # fmt: skip

DRILL_DEFECTS: dict[str, DrillDefect] = {d.name: d for d in _CATALOGUE}


# -- the pytest plugin (``-p gate.drill_defects``) ---------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("relay-gate").addoption(
        "--drill-defect",
        choices=sorted(DRILL_DEFECTS),
        default=None,
        help="run the backup and drill tooling with this deliberate defect of gate/drill_defects.py",
    )


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--drill-defect")
    if not name:
        return
    import pytest

    patcher = pytest.MonkeyPatch()
    DRILL_DEFECTS[name].install(patcher)
    config.add_cleanup(patcher.undo)
