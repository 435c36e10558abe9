"""Results folders as ``relay-gate run`` leaves them, for any combination of step outcomes.

Each step's files are what its verb writes for that exit status (check's summary.json, drill.json,
load.json from real recorders and the real SLO verdict, faults.json), and run.json records the
steps as gate/commands/run.py does — interrupted included. Used to prove that the pack's verdict and
the run's are the same for every combination.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from evidence.criteria import catalogue
from gate.faults.model import CRITERIA
from gate.results import INFRA_MARKER
from gate.verdict import EXIT_INTERRUPTED, EXIT_TERMINATED, Outcome, outcome_of_exit
from tests.load import factory

SKIP = "skip"  # --skip: NOT RUN
NA = "not_applicable"  # faults against a deployment
MISSING = "missing_config"  # a drill against a deployment without [backups]
INTERRUPTS = (EXIT_INTERRUPTED, EXIT_TERMINATED)
# load --baseline: every SLO held, but an endpoint regressed (3) / the comparison had too few samples (4)
REGRESSED = "regressed"
UNPROVEN = "regression_unproven"
COMPARED = {REGRESSED: Outcome.BREACH, UNPROVEN: Outcome.INVALID}

# what each step's verb can end with
STEP_OUTCOMES: dict[str, tuple[int | str, ...]] = {
    "features": (0, 1, 2, 4, 5, EXIT_INTERRUPTED, EXIT_TERMINATED, SKIP),
    "drill": (0, 1, 2, MISSING, 5, EXIT_INTERRUPTED, SKIP),
    "load": (0, 2, 3, 4, 5, EXIT_INTERRUPTED, SKIP, REGRESSED, UNPROVEN),
    "faults": (0, 1, 2, 4, 5, EXIT_INTERRUPTED, NA, SKIP),
}


def normalise(combo: dict[str, int | str]) -> dict[str, int | str | None]:
    """After an interrupted step no step runs: None stands for "not reached"."""
    out: dict[str, int | str | None] = {}
    stopped = False
    for name in STEP_OUTCOMES:
        out[name] = None if stopped else combo[name]
        stopped = stopped or combo[name] in INTERRUPTS
    return out


def step_outcome(value: int | str | None) -> Outcome:
    if value is None or value == SKIP:
        return Outcome.NOT_RUN
    if value == NA:
        return Outcome.NOT_APPLICABLE
    if value == MISSING:
        return Outcome.MISSING_CONFIG
    if value in COMPARED:
        return COMPARED[str(value)]
    assert isinstance(value, int)
    return outcome_of_exit(value)


def _write(path: Path, kind: str, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": f"relay-gate/{kind}@1", **doc}))


def _features(root: Path, code: int | str | None) -> None:
    if code in (None, SKIP, 2):
        return  # not run, or check refused its selection before pytest wrote anything
    entries = catalogue()
    scenarios = []
    for i, e in enumerate(entries):
        sc: dict[str, Any] = {"scenario": e.title, "slug": f"s{i}", "tags": [e.area], "outcome": "passed",
                              "category": None, "reason": None, "nodeid": f"n{i}"}  # fmt: skip
        if code == 1 and i == 0:
            sc.update(outcome="failed", reason="assert 429 == 200")
        elif code == 4 and i == 0:
            sc.update(outcome="skipped", category="missing_config", reason="needs an admin key")
        elif code == 5 or (code in INTERRUPTS and i >= len(entries) // 2):
            sc.update(outcome="not run")
        scenarios.append(sc)
    feature = {"feature": "F", "file": "f.feature", "scenarios": scenarios}
    _write(root / "features" / "summary.json", "features", {"target": {"name": "t"}, "features": [feature]})
    if code == 5:
        (root / "features" / INFRA_MARKER).write_text("the reference stack did not start\n")


def _drill(root: Path, code: int | str | None) -> None:
    if code not in (0, 1, 5):
        return
    measured = None if code == 5 else 1.5
    doc = {
        "verdict": "PASSED" if code == 0 else "FAILED", "exit_code": code,
        "reason": {0: "3 tables match", 1: "checksum mismatch", 5: "pg_restore could not start"}[code],
        "rto": {"target_s": 300, "measured_s": measured, "passed": measured is not None},
        "rpo": {"target_s": 3600, "measured_s": 2.0, "passed": True, "scope": "this_run"},
        "tables": [], "phases": {},
    }  # fmt: skip
    _write(root / "drill" / "drill.json", "drill", doc)


def _load(root: Path, code: int | str | None) -> None:
    if code in (0, 3, 4, 5):
        assert isinstance(code, int)
        (root / "load").mkdir(parents=True, exist_ok=True)
        (root / "load" / "load.json").write_text(_load_json(code))
    if code in COMPARED:
        (root / "load").mkdir(parents=True, exist_ok=True)
        (root / "load" / "load.json").write_text(_compared_json(str(code)))


@functools.cache
def _compared_json(which: str) -> str:
    """load.json of a run compared with a baseline (load/baseline.py): every SLO held, and preview's
    p99 went from 5 to 12 ms (a regression), or the baseline had too few samples to tell."""
    from load import baseline, slos

    base_rec = factory.Recorder()
    n = 2000 if which == REGRESSED else 400
    factory.record(base_rec, "list", n, ms=4.0)
    factory.record(base_rec, "preview", n, ms=5.0)
    factory.record(base_rec, "execute", n // 4, ms=120.0)
    base = baseline.Baseline(Path("baseline/load/load.json"), factory.roundtrip(factory.document(base_rec)))
    rec = factory.healthy(factory.Recorder())
    factory.record(rec, "preview", 0 if which == UNPROVEN else 2000, ms=12.0)
    doc = factory.document(rec)
    assert doc["verdict"]["exit_code"] == 0, doc["verdict"]
    doc = baseline.attach(doc, base, slos.Regression())
    assert doc["verdict"]["exit_code"] == step_outcome_code(which), doc["verdict"]
    return json.dumps({"schema": "relay-gate/load@1", **doc})


def step_outcome_code(value: int | str) -> int:
    """The exit status a step that ended as ``value`` recorded in run.json."""
    outcome = step_outcome(value)
    if isinstance(value, int):
        return value
    return 0 if outcome is Outcome.NOT_APPLICABLE else 3 if outcome is Outcome.BREACH else 4


@functools.cache
def _load_json(code: int) -> str:
    """load.json of a run that ended with ``code``: real recorders, the real SLO verdict."""
    rec = factory.healthy()
    if code == 3:
        factory.record(rec, "preview", 300, ms=900.0)  # p99 far past its SLO
    if code == 5:
        rec = factory.Recorder()
        factory.record(rec, "list", 50, ms=1.0, status=0)  # nothing answered
    doc = factory.document(rec, achieved=50.0 if code == 4 else None)
    assert doc["verdict"]["exit_code"] == code, doc["verdict"]
    return json.dumps({"schema": "relay-gate/load@1", **doc})


def _faults(root: Path, code: int | str | None) -> None:
    if code not in (0, 1, 4):
        return
    criteria = [{"id": cid, "title": title, "passed": True, "status": "pass", "detail": "held"}
                for cid, title in CRITERIA.items()]  # fmt: skip
    if code == 1:
        criteria[0].update(passed=False, status="fail", detail="3 x 500 on list")
    if code == 4:
        criteria[1].update(status="not evidence", note="hang_samples: 30 requests")
    verdict = {0: "PASSED", 1: "FAILED", 4: "INVALID"}[code]
    doc = {"criteria": criteria, "validity": [], "verdict": verdict, "exit_code": code, "reasons": []}
    _write(root / "faults" / "faults.json", "faults", doc)


def write_results(root: Path, combo: dict[str, int | str | None]) -> None:
    """The results folder a run with these step outcomes leaves behind."""
    _features(root, combo["features"])
    _drill(root, combo["drill"])
    _load(root, combo["load"])
    _faults(root, combo["faults"])
    steps = []
    for name, value in combo.items():
        outcome = step_outcome(value)
        code = step_outcome_code(value) if value is not None else 4
        steps.append({"name": name, "exit_code": None if value is None else code, "outcome": str(outcome),
                      "seconds": 1.0, "note": "" if value is not None else "not reached"})  # fmt: skip
    interrupted = next((n for n, v in combo.items() if v in INTERRUPTS), None)
    run: dict[str, Any] = {
        "run_id": root.name, "started_at": "2026-12-04T00:00:00Z", "finished_at": "2026-12-04T00:01:00Z",
        "git": {"commit": "0" * 40, "dirty": False}, "versions": {"relay-gate": "0.1.0"},
        "target": {"name": "t", "backend": "external" if combo["faults"] == NA else "embedded"},
        "command": "run", "steps": steps,
    }  # fmt: skip
    if interrupted is not None:
        sig = "SIGINT" if combo[interrupted] == EXIT_INTERRUPTED else "SIGTERM"
        run["interrupted"] = {"signal": sig, "step": interrupted}
    _write(root / "run.json", "run", run)
