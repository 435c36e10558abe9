"""The drill's record: ``results/drill/drill.json`` (``relay-gate/drill@1``, docs/drill.md), the run's
``run.json`` when the folder is new, and the verified marker a passing drill leaves beside its backup."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gate.drill.backup import mark_verified
from gate.errors import GateError
from gate.results import Redactor, provenance, write_json

if TYPE_CHECKING:
    from gate.drill.restore import DrillResult


def earns_marker(result: DrillResult) -> bool:
    """Only a passing drill marks its backup verified: retention keeps the newest verified backup as the
    last one known to restore, so a backup that restored but did not match must never be marked."""
    return result.passed


def write_results(result: DrillResult, results: Path, *, mark: bool = True) -> Path:
    """``results/drill/drill.json``, plus ``results/run.json`` when the folder is new. A passing drill
    also marks its backup verified (retention keeps the newest verified backup)."""
    drill_json = results / "drill" / "drill.json"
    redactor = Redactor(result.secrets)
    doc = {**result.doc, "verified_marker": None}
    if mark and earns_marker(result) and result.backup is not None:
        try:
            sha = doc["backup"]["sha256"]
            marker = mark_verified(result.backup, run_id=doc["run_id"], sha256=sha, drill_json=drill_json)
            doc["verified_marker"] = str(marker)
        except (OSError, GateError) as exc:  # a read-only backup dir: the drill still passed
            doc["verified_marker_error"] = str(exc)
    # no source named and no manifest read (no backup at all): the backup folder is what was drilled
    source = doc.get("source") or {"database": None}
    name = f"database {source['database']}" if source.get("database") else f"backups in {doc['backup_dir']}"
    target = {**source, "name": name}
    prov = provenance(
        run_id=doc["run_id"], target=target, started_at=doc["started_at"], extra={"command": "drill"}
    )
    doc["provenance"] = {**prov, "finished_at": doc["finished_at"]}
    if not (results / "run.json").exists():
        run_doc = {**doc["provenance"], "exit_code": result.exit_code, "verdict": doc["verdict"]}
        write_json(results / "run.json", "run", 1, run_doc, redactor=redactor)
    return write_json(drill_json, "drill", 1, doc, redactor=redactor)
