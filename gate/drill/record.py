"""The drill's record: ``results/drill/drill.json`` (``relay-gate/drill@1``, docs/drill.md), the run's
``run.json`` when the folder is new, the verified marker a passing drill leaves beside its backup, and
what the terminal is told (:func:`report`, used by ``relay-gate drill`` and by ``run``'s drill of a
deployment)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gate.drill.backup import mark_verified
from gate.drill.restore import DrillOptions, DrillResult, human, run_drill
from gate.errors import GateError
from gate.results import Redactor, provenance, write_json


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


def report(opts: DrillOptions, results: Path, *, mark: bool = True) -> int:
    """Run the drill, write its results, say what it saw; the exit code. ``mark=False`` leaves the
    backup folder untouched (no verified marker): a deployment's backups are only read."""
    print(f"relay-gate drill: run {opts.run_id}, backups in {opts.backup_dir}", flush=True)
    result = run_drill(opts)
    path = write_results(result, results, mark=mark)
    print(summary(result.doc))
    print(f"verdict: {result.doc['verdict']} (exit {result.exit_code}): {result.reason}")
    print(f"results: {path}")
    if not result.passed:
        print(f"relay-gate drill: FAILED: {result.reason}", file=sys.stderr)
    return result.exit_code


def summary(doc: dict[str, Any]) -> str:
    """What the drill saw, phase by phase, for the terminal."""
    lines = []
    b = doc.get("backup")
    if b:
        size = f"{b['size_bytes'] / 1e6:.1f} MB" if isinstance(b.get("size_bytes"), int) else "? MB"
        lines.append(f"  {'backup':<12} {b['file']} ({size}, taken {b['taken_at']})")
    t = doc["restore_target"]
    for name, ph in doc["phases"].items():
        extra = ""
        if name == "create_db" and t.get("database"):
            extra = f"  {t['mode']}: {t.get('host')}:{t.get('port')}/{t['database']}"
        if name == "restore" and doc.get("restore"):
            extra = f"  {doc['restore']['strategy']}"
        state = "ok" if ph["ok"] else f"FAILED: {ph.get('error', '')}"
        lines.append(f"  {name:<12} {ph['duration_s']:>7.2f} s  {state}{extra}")
    s = doc.get("summary")
    if s:
        rows = f"rows {s['rows_source']:,} -> {s['rows_restored']:,}"
        lines.append(f"  {'tables':<12} {s['matching']}/{s['tables']} match; {rows}")
    for t in doc.get("tables", []):
        if not t["match"]:
            lines.append(
                f"  {'':<12} {t['status']}: {t['table']}: source {t['source']}, restored {t['restored']}"
            )
    for key in ("rto", "rpo"):
        g = doc[key]
        if g["measured_s"] is not None:
            ok = "ok" if g["passed"] else "EXCEEDED"
            lines.append(
                f"  {key.upper():<12} {human(g['measured_s'])} vs target {human(g['target_s'])}: {ok}"
            )
    return "\n".join(lines)
