"""``relay-gate backup``: a snapshot-consistent ``pg_dump -Fc`` with its manifest, then retention.

The backup goes to ``BACKUPS/YYYY-MM-DD/<db>-<UTC>.dump`` with ``<db>-<UTC>.manifest.json`` beside it
(see gate/drill/backup.py and docs/drill.md). Only once it is complete are old day folders pruned: those
older than ``--keep-days`` go, except the newest backup a drill verified and the newest
``--keep-min`` backups. ``--dry-run`` takes no backup and removes nothing; it prints what pruning
after a backup would remove.

Exit: 0 backup written (and pruned); 2 bad usage; 5 the source is unreachable, pg_dump is missing or
older than the server, the disk is full, pg_dump failed, or pruning failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gate.drill.backup import BACKUP_JOBS, fsync_dir, take_backup
from gate.drill.fingerprint import PgConn
from gate.drill.layout import DAY_RE, list_backups
from gate.errors import EXIT_INFRA, EXIT_OK, UsageError

DEFAULT_KEEP_DAYS = 30


def register(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        help="pg_dump the database with a manifest of its tables, then prune old backups",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="the database to back up (default $DATABASE_URL, which keeps the password out of ps)",
    )
    p.add_argument("--dir", type=Path, required=True, help="backup root: day folders YYYY-MM-DD go here")
    p.add_argument("--keep-days", type=int, default=DEFAULT_KEEP_DAYS, help="prune day folders older (30)")
    p.add_argument("--keep-min", type=int, default=1, help="never keep fewer backups than this (>= 1)")
    p.add_argument("--no-prune", action="store_true", help="take the backup, prune nothing")
    p.add_argument("--dry-run", action="store_true", help="no backup, no removal: print what would go")
    p.add_argument("--compress", type=int, choices=range(10), default=None, metavar="0-9",
                   help="pg_dump gzip level (default: pg_dump's own)")  # fmt: skip
    p.add_argument(
        "--jobs", type=int, default=BACKUP_JOBS, help="connections hashing tables (default %(default)s)"
    )
    p.add_argument("--pg-bin", type=Path, default=None, help="directory holding pg_dump (default: bundled)")
    p.set_defaults(run=run)


# -- retention ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    path: Path
    reason: str


@dataclass(frozen=True)
class RetentionPlan:
    remove: list[Removal]
    kept: list[Removal]  # backups in expired folders that are kept, and why

    def lines(self) -> list[str]:
        return [f"  remove {r.path}  ({r.reason})" for r in self.remove] + [
            f"  keep   {k.path}  ({k.reason})" for k in self.kept
        ]


def plan_retention(
    backup_dir: Path, *, keep_days: int = DEFAULT_KEEP_DAYS, keep_min: int = 1, today: date | None = None,
    pending_backup: bool = False,
) -> RetentionPlan:  # fmt: skip
    """What pruning removes: ``YYYY-MM-DD`` folders older than ``keep_days`` (UTC), except the newest
    verified backup and the newest ``keep_min`` backups, which stay in their folder (the rest of that
    folder goes). ``pending_backup``: count one more backup, newer than all (a dry run). Nothing but
    day folders and what is inside them is ever touched."""
    if keep_days < 0 or keep_min < 1:
        raise UsageError("--keep-days must be >= 0 and --keep-min >= 1")
    cutoff = (today or datetime.now(UTC).date()) - timedelta(days=keep_days)
    backups = list_backups(backup_dir)
    protected = {b.stem: f"one of the newest {keep_min}" for b in backups[::-1][: keep_min - pending_backup]}
    verified = [b for b in backups if b.verified]
    if verified:
        protected[verified[-1].stem] = "the newest verified backup"
    remove, kept = [], []
    for day_dir in sorted(Path(backup_dir).iterdir()) if Path(backup_dir).is_dir() else []:
        if not (day_dir.is_dir() and not day_dir.is_symlink() and DAY_RE.match(day_dir.name)):
            continue
        with contextlib.suppress(ValueError):
            if date.fromisoformat(day_dir.name) >= cutoff:
                continue
            why = f"older than {keep_days} days"
            stay = [b for b in backups if b.day == day_dir.name and b.stem in protected]
            if not stay:
                remove.append(Removal(day_dir, why))
                continue
            kept += [Removal(b.dump, protected[b.stem]) for b in stay]
            names = {f"{b.stem}{s}" for b in stay for s in (".dump", ".manifest.json", ".verified.json")}
            remove += [Removal(p, why) for p in sorted(day_dir.iterdir()) if p.name not in names]
    return RetentionPlan(remove, kept)


def apply_retention(plan: RetentionPlan) -> None:
    for r in plan.remove:
        if r.path.is_dir() and not r.path.is_symlink():
            shutil.rmtree(r.path)
        else:
            r.path.unlink(missing_ok=True)
    for parent in {r.path.parent for r in plan.remove}:
        with contextlib.suppress(OSError):
            fsync_dir(parent)


# -- the command --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.keep_days < 0 or args.keep_min < 1:
        raise UsageError("--keep-days must be >= 0 and --keep-min >= 1 (the newest backup is always kept)")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    policy = f"older than {args.keep_days} days; keeping the newest {args.keep_min} and the newest verified"
    if args.dry_run:
        plan = plan_retention(args.dir, keep_days=args.keep_days, keep_min=args.keep_min, pending_backup=True)
        print(f"relay-gate backup --dry-run: no backup taken, nothing removed. Pruning ({policy}) would:")
        print("\n".join(plan.lines()) or "  remove nothing")
        return EXIT_OK
    if not args.database_url:
        raise UsageError("no database: pass --database-url or set DATABASE_URL")
    src = PgConn.parse(args.database_url)
    print(f"relay-gate backup: {src.where} -> {args.dir}", flush=True)
    backup = take_backup(
        args.database_url, args.dir, pg_bin=args.pg_bin, jobs=args.jobs, compress=args.compress
    )
    m = backup.manifest()
    dump, totals, versions = m["dump"], m["totals"], m["versions"]
    print(f"  wrote {backup.dump} ({dump['size_bytes'] / 1e6:.1f} MB, sha256 {dump['sha256'][:16]}…)")
    print(
        f"  manifest {backup.manifest_path.name}: {totals['tables']} tables, {totals['rows']:,} rows "
        f"in snapshot {m['snapshot']['id']}; pg_dump {versions['pg_dump']}, server {versions['server']}; "
        f"{m['durations_s']['total']:.2f} s"
    )
    if args.no_prune:
        return EXIT_OK
    plan = plan_retention(args.dir, keep_days=args.keep_days, keep_min=args.keep_min)
    try:
        apply_retention(plan)
    except OSError as exc:
        print(f"relay-gate backup: the backup is complete, but pruning failed: {exc}", file=sys.stderr)
        return EXIT_INFRA
    print(f"retention ({policy}): {len(plan.remove)} removed")
    if plan.remove or plan.kept:
        print("\n".join(plan.lines()))
    return EXIT_OK
