"""``relay-gate drill``: restore the latest backup into an ephemeral database and prove it matches.

Checks the dump's SHA-256 against its manifest, creates an ephemeral database, restores with
``pg_restore --single-transaction --exit-on-error`` (``--jobs N``: parallel, still exit-on-error),
counts and digests every table inside the restored database, compares them table by table with the
manifest, and drops the ephemeral database whatever happened. Restore time (RTO) and backup age (RPO)
are measured against --rto and --rpo (seconds, or 15m / 26h / 1d).

Where the restore happens (--restore-to): ``same`` = a new database on the source's server; ``embedded``
= a throwaway PostgreSQL started for the drill; a postgresql:// URL = a new database on that server.
``auto`` (default): ``same`` when the source is on this machine, else ``embedded`` — a remote source
is only ever read. Without a source (no --database-url, no DATABASE_URL) the drill restores the latest
backup of --dir whatever database it is of, and ``auto`` means ``embedded``: the backups are all it needs.

Results: ``<results>/drill/drill.json`` (relay-gate/drill@1) and ``<results>/run.json`` when the folder
is new. A passing drill marks the backup verified (retention keeps the newest verified backup).

Exit: 0 PASSED; 1 FAILED: no backup, checksum mismatch, truncated or unrestorable dump, a table that
differs, RTO or RPO exceeded; 2 bad usage; 5 the source or restore target is unreachable, the disk is
full, or pg_restore is missing or too old.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gate.drill.fingerprint import DEFAULT_JOBS
from gate.drill.record import report
from gate.drill.restore import (
    DEFAULT_RPO_S,
    DEFAULT_RTO_S,
    DrillOptions,
)
from gate.durations import parse_duration
from gate.errors import UsageError
from gate.results import existing_run_id, new_run_id


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any) -> None:
    p = sub.add_parser(
        "drill",
        help="restore the latest backup into an ephemeral database and compare it with its manifest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the database the backups are of (default $DATABASE_URL, which keeps the password out of ps); "
        "without one, the latest backup of --dir is restored whatever it is of",
    )
    p.add_argument("--dir", type=Path, required=True, help="backup root written by relay-gate backup")
    p.add_argument("--rto", type=_duration, default=DEFAULT_RTO_S, help="restore time target (default 15m)")
    p.add_argument("--rpo", type=_duration, default=DEFAULT_RPO_S, help="backup age target (default 26h)")
    p.add_argument("--results", type=Path, default=None, help="results folder (default results/<run-id>)")
    p.add_argument(
        "--restore-to",
        default=os.environ.get("RELAY_GATE_RESTORE_TO", "auto"),
        help="auto | same | embedded | postgresql://… (default auto; $RELAY_GATE_RESTORE_TO)",
    )
    p.add_argument("--jobs", type=int, default=1, help="pg_restore jobs: 1 = single transaction (default)")
    p.add_argument(
        "--verify-jobs", type=int, default=DEFAULT_JOBS, help="connections hashing the restore (%(default)s)"
    )
    p.add_argument(
        "--pg-bin", type=Path, default=None, help="directory holding pg_restore (default: bundled)"
    )
    p.add_argument(
        "--backup-taken-by-this-run",
        action="store_true",
        help="the backup was taken moments ago by the same run (relay-gate run on the reference stack): "
        "the RPO criterion then checks the backup tooling's timestamps, and the evidence says so",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1 or args.verify_jobs < 1:
        raise UsageError("--jobs and --verify-jobs must be at least 1")
    fresh = new_run_id()
    results = args.results or Path("results") / fresh
    opts = DrillOptions(
        database_url=args.database_url or None,
        backup_dir=args.dir,
        restore_to=args.restore_to,
        rto_s=args.rto,
        rpo_s=args.rpo,
        jobs=args.jobs,
        verify_jobs=args.verify_jobs,
        pg_bin=args.pg_bin,
        run_id=existing_run_id(results) or fresh,
        rpo_scope="this_run" if args.backup_taken_by_this_run else "latest",
    )
    return report(opts, results)
