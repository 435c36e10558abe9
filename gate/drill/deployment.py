"""The restore drill of a deployment: its own latest backup, restored on a server the gate owns.

A deployment's scheduled ``relay-gate backup`` writes into the folder its target config names
(``[backups].dir``, gate/client/target_backups.py). The gate only ever reads that folder: the drill restores
the latest backup there into an ephemeral database on the embedded PostgreSQL (or on a server named by
``RELAY_GATE_RESTORE_TO``), writes no verified marker beside it, and judges the RPO on that backup's
real age (``rpo.scope = "latest"``). The deployment's database is never written — it is not even
read: ``[database]``, when given, only names the database the backups must be of. Checks that damage
a backup (the drill tooling's own) work on a copy made by :func:`copy_latest`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gate.drill.layout import Backup, list_backups
from gate.drill.record import report
from gate.drill.restore import DrillOptions
from gate.errors import EXIT_INVALID, GateError, UsageError
from gate.redaction import mask_url_passwords
from gate.results import existing_run_id, new_run_id
from gate.verdict import Outcome

if TYPE_CHECKING:
    from gate.client.target import Target

NO_BACKUPS = "the target config names no backups folder ([backups].dir): drill NOT RUN"


def restore_to(environ: Mapping[str, str] | None = None) -> str:
    """Where a deployment's backup is restored: ``embedded`` unless ``RELAY_GATE_RESTORE_TO`` names a
    server of the user's own (a postgresql:// URL). The deployment's own server never: ``same`` is
    refused, and ``auto`` (``same`` for a local source) means ``embedded`` here."""
    env = os.environ if environ is None else environ
    chosen = env.get("RELAY_GATE_RESTORE_TO") or "embedded"
    if chosen == "auto":
        return "embedded"
    if chosen == "same":
        raise UsageError(
            f"RELAY_GATE_RESTORE_TO={chosen}: a deployment's backup is restored on a server the gate owns, "
            "never on the deployment's own; unset it (embedded) or name a postgresql:// server of yours"
        )
    return chosen


def drill_options(target: Target, results: Path, *, environ: Mapping[str, str] | None = None) -> DrillOptions:
    """The drill of ``target``'s latest backup. UsageError when it has no ``[backups]``."""
    if target.backups is None:
        raise UsageError(NO_BACKUPS)
    return DrillOptions(
        database_url=target.database_url,  # only names the database; the drill never connects to it
        backup_dir=target.backups.dir,
        restore_to=restore_to(environ),
        rto_s=target.backups.rto_s,
        rpo_s=target.backups.rpo_s,
        run_id=existing_run_id(results) or new_run_id(),
        rpo_scope="latest",
    )


def drill_deployment(target: Target, results: Path) -> tuple[int, str] | tuple[int, str, Outcome]:
    """``relay-gate run``'s drill step on a deployment: (exit code, note[, outcome])."""
    if target.backups is None:
        return EXIT_INVALID, NO_BACKUPS, Outcome.MISSING_CONFIG
    try:
        opts = drill_options(target, results)
        # mark=False: no verified marker in the deployment's folder, which stays byte for byte as it was
        return report(opts, results, mark=False), f"the latest backup of {target.backups.dir}"
    except GateError as exc:  # RELAY_GATE_RESTORE_TO=same, a malformed URL: refused before any restore
        print(f"relay-gate run: drill: {mask_url_passwords(str(exc))}", flush=True)
        return exc.exit_code, mask_url_passwords(str(exc))


def copy_latest(backup_dir: Path, into: Path) -> Backup:
    """A copy of the latest backup of ``backup_dir`` (dump and manifest, in their day folder) under
    ``into``: what the drill tooling's checks damage, so that the original is never touched."""
    backups = list_backups(backup_dir)
    if not backups:
        raise UsageError(f"no backup in {backup_dir} to copy")
    latest = backups[-1]
    day = into / latest.day
    day.mkdir(parents=True, exist_ok=True)
    manifest = shutil.copy2(latest.manifest_path, day / latest.manifest_path.name)
    dump = day / latest.dump.name
    if latest.dump.is_file():
        shutil.copy2(latest.dump, dump)
    return Backup(latest.stem, latest.day, dump, Path(manifest))
