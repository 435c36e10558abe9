"""``relay-gate selftest``: proof that the gate can fail.

A gate that never fails proves nothing. The selftest runs the acceptance scenarios against the clean
reference stack, which must pass everything it runs, then once against each deliberate defect — of the
service (gate/proof/catalogue.py) or of the backup and drill tooling (gate/proof/defects_drill.py) — which
must make at least one scenario fail. Each run is a child pytest built exactly as ``relay-gate check`` builds
it (gate/commands/check.py: ``-c features/pytest-check.ini``, ``--results``), on a fresh stack, limited to
the defect's area (``-m AREA``); every scenario that failed is recorded as having caught the defect, not
only the ones written for it. A scenario counts only if it passed against the clean service.

Results: ``<results>/selftest/selftest.json`` (``relay-gate/selftest@1``) and each run's own results
folder under ``<results>/selftest/runs/<clean|defect>/`` (summary.json, scenario records, pytest.log).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from gate.commands.check import pytest_argv
from gate.errors import UsageError
from gate.interrupts import wait_child
from gate.proof.catalogue import DEFECTS
from gate.proof.defects_drill import DRILL_DEFECTS
from gate.proof.report import catalogue_table, render_table, verdict_lines, write_report
from gate.proof.runs import DefectResult, FeatureRun, Report, Scenario, Subject
from gate.redacted_output import spawn
from gate.results import INFRA_MARKER, Redactor, read_json

AREAS = ("headers", "rate_limit", "signing", "audit", "api", "drill")  # run and report order, area by area
RUN_TIMEOUT_S = 900.0  # one child pytest; the slowest area takes well under a minute here
INTERRUPT_GRACE_S = 60.0  # after SIGINT, time for pytest to stop its stack before it is killed
# a developer's shell must not change what a run tests: a defect or pytest options slipped in
_DROPPED_ENV = ("RELAY_GATE_DEFECT", "PYTEST_ADDOPTS")


def catalogue() -> dict[str, Subject]:
    """Every defect, service and tooling alike, in run order (by area, then as catalogued)."""
    found = [
        Subject(d.name, "service", d.area, d.summary, d.caught_by, d.needs_control) for d in DEFECTS.values()
    ] + [
        Subject(d.name, "tooling", d.area, d.summary, d.caught_by, d.needs_control)
        for d in DRILL_DEFECTS.values()
    ]
    found.sort(key=lambda s: AREAS.index(s.area))  # stable: catalogue order within an area
    return {s.name: s for s in found}


def select(names: Iterable[str] = (), areas: Iterable[str] = ()) -> list[Subject]:
    """The defects named plus every defect of the areas named; all of them when neither is given."""
    names, areas = list(names), list(areas)
    known = catalogue()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown defect(s) {', '.join(unknown)}: `relay-gate selftest --list` shows them")
    bad = [a for a in areas if a not in AREAS]
    if bad:
        raise UsageError(f"unknown area(s) {', '.join(bad)}: use one of {', '.join(AREAS)}")
    if not names and not areas:
        return list(known.values())
    return [s for s in known.values() if s.name in names or s.area in areas]


# -- one child pytest ----------------------------------------------------------------------------------


def run_features(
    *, results: Path, backend: str, markexpr: str | None, extra: list[str], timeout_s: float = RUN_TIMEOUT_S
) -> FeatureRun:
    """Run the scenarios selected by ``markexpr`` in a child pytest on a fresh stack, ``extra`` appended
    to ``relay-gate check``'s own command line; the child's output goes, redacted as it comes, to
    ``results/pytest.log``."""
    (results / "features").mkdir(parents=True, exist_ok=True)
    ns = argparse.Namespace(
        backend=backend, target_url=None, target_config=None, markexpr=markexpr, keyword=None
    )
    argv = [*pytest_argv(ns, results), *extra]
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    t0 = time.monotonic()
    redactor = Redactor()  # the stack's secrets are made up in the child, which hands them over
    with open(results / "pytest.log", "w") as log:
        log.write(redactor.text("$ " + " ".join(argv)) + "\n\n")
        log.flush()
        # Ctrl-C: forwarded once, and the child stops its stack before we go on unwinding
        child = spawn(argv, redactor=redactor, stdout=log, secrets_from_child=True, env=env,
                      start_new_session=True)  # fmt: skip
        try:
            rc, timed_out = wait_child(child.popen, timeout_s=timeout_s)
        finally:
            child.finish()
    run = FeatureRun(results, "error", rc, round(time.monotonic() - t0, 3))
    summary = results / "features" / "summary.json"
    if summary.exists():
        doc = read_json(summary, "features")
        run.scenarios = [
            Scenario(f["feature"], s["scenario"], s["outcome"], s.get("reason"))
            for f in doc.get("features", [])
            for s in f["scenarios"]
        ]
    infra = results / "features" / INFRA_MARKER
    if timed_out:
        run.status, run.message = "infrastructure", f"pytest did not finish within {timeout_s:.0f} s"
    elif infra.exists():
        run.status, run.message = "infrastructure", infra.read_text().strip()
    elif rc == 0 and run.count("passed"):
        run.status = "passed"
    elif rc == 1 and run.count("failed"):
        run.status = "failed"
    elif rc == 5:
        run.message = f"no scenario matched -m {markexpr!r}"
    elif rc == 0:  # everything skipped: the stack could not give the scenarios what they need
        reasons = sorted({str(s.reason) for s in run.scenarios if s.outcome == "skipped"})
        run.status, run.message = (
            "infrastructure",
            "no scenario ran: " + ("; ".join(reasons) or "none selected"),
        )
    else:
        run.message = f"pytest exited {rc} without a failed scenario to show for it"
    if run.message:
        run.message += f" (log: {results / 'pytest.log'})"
    return run


# -- judging ---------------------------------------------------------------------------------------


def judge(subject: Subject, run: FeatureRun, clean: FeatureRun | None) -> DefectResult:
    """Caught when a scenario written to catch the defect (its ``caught_by``) failed, having passed
    against the clean service. A failure of any other scenario is not a catch: it is recorded apart as
    unrelated, and makes the selftest fail too (tests/features/proof.py holds the same line)."""
    if run.status in ("infrastructure", "error"):
        return DefectResult(subject, run, "error", [], [])
    passed_clean = {s.key for s in clean.scenarios if s.outcome == "passed"} if clean else None
    failed = [
        s for s in run.scenarios if s.outcome == "failed" and (passed_clean is None or s.key in passed_clean)
    ]
    designed = set(subject.caught_by)
    caught = [s for s in failed if s.scenario in designed]
    unrelated = [s for s in failed if s.scenario not in designed]
    failed_names = {s.scenario for s in caught}
    missing = [name for name in subject.caught_by if name not in failed_names]
    return DefectResult(subject, run, "caught" if caught else "escaped", caught, missing, unrelated)


def catalogue_markdown() -> str:
    """The catalogue table of docs/selftest.md (a test keeps the two identical)."""
    return catalogue_table(catalogue().values())


# -- the whole selftest ----------------------------------------------------------------------------


def run_selftest(
    subjects: list[Subject],
    *,
    results: Path,
    run_id: str,
    backend: str,
    whole_gate: bool,
    out: TextIO | None = None,
) -> Report:
    """Clean run first (all features when ``whole_gate``, else the selected areas), then each defect on
    its area's scenarios; stops after the clean run if the clean service does not pass."""
    t0 = time.monotonic()
    report = Report(results=results, backend=backend, run_id=run_id)
    runs = results / "selftest" / "runs"
    areas = [a for a in AREAS if any(s.area == a for s in subjects)]
    report.clean_markexpr = None if whole_gate else " or ".join(areas)
    total = len(subjects)

    def say(text: str, end: str = "\n") -> None:
        # sys.stdout looked up now, not at import: whoever redirected it (capsys, a wrapper) gets the text
        print(text, end=end, file=out or sys.stdout, flush=True)

    say(
        f"relay-gate selftest: run {run_id}, {total} defect(s) in {len(areas)} area(s), "
        f"backend {backend}; results in {results}"
    )
    say(f"[{0:>2}/{total}] clean service ({report.clean_markexpr or 'every feature'}) ... ", end="")
    clean = report.clean = run_features(
        results=runs / "clean", backend=backend, markexpr=report.clean_markexpr, extra=[]
    )
    c = clean.counts()
    say(
        f"{clean.status}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped "
        f"in {clean.duration_s:.1f} s"
    )
    if clean.status != "passed":
        for s in clean.scenarios:
            if s.outcome == "failed":
                say(f"  FAILED  {s.scenario}\n          {s.reason}")
        say(
            clean.message
            or "the gate fails against the clean service: no defect can be judged until it passes"
        )
    else:
        for i, subject in enumerate(subjects, 1):
            say(f"[{i:>2}/{total}] {subject.name} ({subject.area}) ... ", end="")
            run = run_features(
                results=runs / subject.name,
                backend=backend,
                markexpr=subject.area,
                extra=subject.pytest_args(),
            )
            result = judge(subject, run, clean)
            report.defects.append(result)
            detail = {"caught": f"caught by {len(result.caught_by)} scenario(s)", "escaped": "ESCAPED",
                      "error": f"ERROR: {run.message}"}[result.outcome]  # fmt: skip
            if result.unrelated:
                detail += f"; UNRELATED failure(s): {len(result.unrelated)}"
            say(f"{detail} in {run.duration_s:.1f} s")
    report.duration_s = time.monotonic() - t0
    if report.defects:
        say("\n" + render_table(report.defects))
    for line in verdict_lines(report):
        say(line)
    write_report(report)
    return report
