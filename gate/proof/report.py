"""How a selftest is shown and recorded: the terminal table and closing verdict lines, the ``--list``
view, the catalogue table of docs/selftest.md, and the documents ``selftest/selftest.json`` and
``run.json``. gate/proof/selftest.py runs the selftest; nothing here runs anything. The records both use
are in gate/proof/runs.py."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gate.errors import EXIT_CRITERION, EXIT_OK
from gate.proof.runs import DefectResult, FeatureRun, Report, Subject
from gate.results import Redactor, provenance, utc_now, write_json

# -- documents -------------------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    """The document of selftest.json."""
    caught = sum(d.outcome == "caught" for d in report.defects)
    return {
        "run_id": report.run_id, "started_at": report.started_at, "finished_at": utc_now(),
        "duration_s": round(report.duration_s, 3), "backend": report.backend,
        "verdict": {EXIT_OK: "PASSED", EXIT_CRITERION: "FAILED"}.get(report.exit_code, "ERROR"),
        "exit_code": report.exit_code,
        "totals": {"defects": len(report.defects), "caught": caught, "escaped": len(report.escaped),
                   "errors": len(report.errors),
                   "caught_pct": round(100 * caught / len(report.defects), 1) if report.defects else None},
        "escaped": report.escaped, "errors": report.errors, "unrelated": report.unrelated,
        "clean": None if report.clean is None else {
            **_run_json(report.clean, report.results), "markexpr": report.clean_markexpr},
        "defects": [{
            "name": d.subject.name, "kind": d.subject.kind, "area": d.subject.area,
            "summary": d.subject.summary, "needs_control": d.subject.needs_control,
            "outcome": d.outcome, "caught_by": [s.to_json() for s in d.caught_by],
            "unrelated_failures": [s.to_json() for s in d.unrelated],
            "expected": list(d.subject.caught_by), "expected_missing": d.expected_missing,
            **_run_json(d.run, report.results)} for d in report.defects],
        "figures": figures(report),
    }  # fmt: skip


def _run_json(run: FeatureRun, root: Path) -> dict[str, Any]:
    return {
        "status": run.status, "pytest_exit": run.pytest_exit, "duration_s": run.duration_s,
        "scenarios": run.counts(), "message": run.message,
        "results": str(run.results.relative_to(root) if run.results.is_relative_to(root) else run.results),
    }  # fmt: skip


def figures(report: Report) -> dict[str, Any]:
    """Timing: the whole selftest, the clean run, and per defect (min, median, max, by area)."""
    per = [d.run.duration_s for d in report.defects]
    by_area: dict[str, list[float]] = {}
    for d in report.defects:
        by_area.setdefault(d.subject.area, []).append(d.run.duration_s)
    return {
        "total_s": round(report.duration_s, 1),
        "clean_s": report.clean.duration_s if report.clean else None,
        "per_defect_s": {"min": min(per), "median": round(statistics.median(per), 1), "max": max(per)}
        if per
        else None,
        "per_area_mean_s": {a: round(statistics.fmean(v), 1) for a, v in by_area.items()},
    }


def write_report(report: Report) -> Path:
    """``<results>/selftest/selftest.json``. Nothing in it is secret (each run's own files are redacted
    by that run), but it goes through the same writer: atomic and versioned."""
    path = report.results / "selftest" / "selftest.json"
    return write_json(path, "selftest", 1, report_json(report), redactor=Redactor(()))


def write_run_json(results: Path, *, run_id: str, backend: str, report: Report | None = None) -> None:
    """Write ``run.json`` (relay-gate/run@1): provenance at the start, the exit code and totals once
    ``report`` is there. Only for a folder the selftest created: one that has a run.json of its own (a
    run the selftest joined) keeps it — the caller decides."""
    target = {"name": f"reference stack ({backend}) with deliberate defects", "backend": backend}
    doc = provenance(run_id=run_id, target=target, started_at=report.started_at if report else utc_now(),
                     extra={"command": "selftest"})  # fmt: skip
    if report is not None:
        doc.update(finished_at=utc_now(), exit_code=report.exit_code, totals=report_json(report)["totals"])
    write_json(results / "run.json", "run", 1, doc, redactor=Redactor(()))


# -- the terminal and the docs ---------------------------------------------------------------------


def render_table(results: list[DefectResult]) -> str:
    """defect -> the scenarios that caught it, one per line, with its area and the run's time."""
    width = max([len("defect"), *(len(d.subject.name) for d in results)])
    lines = [f"{'defect':<{width}}  {'area':<10}  {'time':>7}  caught by"]
    for d in results:
        head = f"{d.subject.name:<{width}}  {d.subject.area:<10}  {d.run.duration_s:>5.1f} s  "
        if d.outcome == "caught":
            cells = [s.scenario for s in d.caught_by]
        elif d.outcome == "escaped":
            c = d.run.counts()
            cells = [f"ESCAPED: no scenario failed ({c['passed']} passed, {c['skipped']} skipped)"]
        else:
            cells = [f"ERROR: {d.run.message}"]
        cells += [f"UNRELATED (not written to catch it): {s.scenario}" for s in d.unrelated]
        lines.append(head + cells[0])
        lines += [" " * len(head) + cell for cell in cells[1:]]
    return "\n".join(lines)


def render_catalogue(subjects: Iterable[Subject]) -> str:
    """The ``--list`` view: name, area, kind, what it breaks."""
    subjects = list(subjects)
    width = max((len(s.name) for s in subjects), default=0)
    return "\n".join(f"{s.name:<{width}}  {s.area:<10}  {s.kind:<7}  {s.summary}" for s in subjects)


def catalogue_table(subjects: Iterable[Subject]) -> str:
    """The catalogue as the Markdown table of docs/selftest.md
    (``gate.proof.selftest.catalogue_markdown``)."""
    rows = ["| defect | area | what it breaks | written to be caught by |", "|---|---|---|---|"]
    for s in subjects:
        control = " (needs control of the stack)" if s.needs_control else ""
        tooling = " *(backup/drill tooling)*" if s.kind == "tooling" else ""
        scenarios = "<br>".join(s.caught_by)
        rows.append(f"| `{s.name}`{tooling} | {s.area} | {s.summary}{control} | {scenarios} |")
    return "\n".join(rows)


def _clock(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def verdict_lines(report: Report) -> list[str]:
    """The closing lines of the terminal output: what was caught, timing, escapes, errors."""
    n, caught = len(report.defects), sum(d.outcome == "caught" for d in report.defects)
    fig = figures(report)
    if report.clean is None or report.clean.status != "passed":
        lines = ["\nno defect was run: the clean service must pass first"]
    else:
        lines = [f"\ncaught {caught} of {n} defect(s)" + (f" ({100 * caught / n:.0f} %)" if n else "")]
    if report.clean is not None:
        c = report.clean.counts()
        lines.append(f"clean service: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
    per = fig["per_defect_s"]
    if per:
        lines.append(
            f"time: {_clock(report.duration_s)} in all; clean run {fig['clean_s'] or 0:.1f} s;"
            f" per defect {per['min']:.1f} / {per['median']:.1f} / {per['max']:.1f} s (min / median / max)"
        )
    for d in report.defects:
        if d.outcome == "caught" and d.expected_missing:
            lines.append(
                f"note: {d.subject.name} did not fail the scenario(s) written for it: "
                + "; ".join(d.expected_missing)
            )
    if report.escaped:
        lines.append(f"ESCAPED (the gate cannot fail against them): {', '.join(report.escaped)}")
    if report.unrelated:
        lines.append(
            "UNRELATED FAILURES (a scenario not written for the defect failed: a flaky scenario, or a "
            f"catalogue entry that does not say what its defect breaks): {', '.join(report.unrelated)}"
        )
    if report.errors:
        lines.append(f"NOT JUDGED (the run did not complete): {', '.join(report.errors)}")
    return lines
