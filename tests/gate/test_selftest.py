"""``relay-gate selftest``: the catalogue, how a defect is judged caught, the report, the CLI end to end,
and the tooling defects of gate/proof/defects_drill.py doing what they claim."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import gate.proof.selftest
from gate.cli import main
from gate.drill.backup import take_backup
from gate.drill.restore import DrillOptions, run_drill, seed_bulk_table
from gate.errors import UsageError
from gate.proof import defects_drill as drill_defects
from gate.proof.catalogue import DEFECTS
from gate.proof.defects_drill import DRILL_DEFECTS
from gate.proof.report import render_table, report_json, verdict_lines, write_report
from gate.proof.selftest import (
    AREAS,
    DefectResult,
    FeatureRun,
    Report,
    Scenario,
    Subject,
    catalogue,
    catalogue_markdown,
    judge,
    run_features,
    select,
)

ROOT = Path(__file__).resolve().parents[2]


def subject(name: str = "some-defect", area: str = "headers", caught_by: tuple[str, ...] = ("A",)) -> Subject:
    return Subject(name, "service", area, f"{name} breaks things", caught_by)


def feature_run(tmp: Path, status: str = "failed", **outcomes: str) -> FeatureRun:
    """A run whose scenarios are named by the keyword arguments (A="failed", B="passed", ...)."""
    scenarios = [
        Scenario("Feature", name, outcome, f"{name} {outcome}") for name, outcome in outcomes.items()
    ]
    return FeatureRun(tmp, status, 1 if status == "failed" else 0, 3.25, scenarios)  # type: ignore[arg-type]


def feature_scenarios() -> dict[str, set[str]]:
    """Scenario names of features/*.feature by area (the feature's first tag; an area may have several
    feature files, as signing has signing.feature and delivery.feature)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / "features").glob("*.feature"):
        lines = path.read_text().splitlines()
        area = lines[0].split()[0].lstrip("@")
        out.setdefault(area, set()).update(
            ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("Scenario:")
        )
    return out


# -- the catalogue -------------------------------------------------------------------------------------


def test_the_catalogue_holds_every_service_and_tooling_defect_once_in_area_order() -> None:
    found = catalogue()
    assert set(found) == set(DEFECTS) | set(DRILL_DEFECTS) and not set(DEFECTS) & set(DRILL_DEFECTS)
    assert len(DEFECTS) >= 15 and len(DRILL_DEFECTS) >= 2
    areas = [s.area for s in found.values()]
    assert areas == sorted(areas, key=AREAS.index), "runs are grouped by area, cheapest first"
    assert {s.kind for s in found.values() if s.area == "drill"} == {"tooling"}
    for s in found.values():
        assert s.summary and s.caught_by, f"{s.name}: say what it breaks and which scenario catches it"
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", s.name), s.name


def test_every_scenario_named_to_catch_a_defect_is_a_scenario_of_its_area() -> None:
    scenarios = feature_scenarios()
    assert set(AREAS) <= set(scenarios)
    for s in catalogue().values():
        missing = set(s.caught_by) - scenarios[s.area]
        assert not missing, f"{s.name}: not scenarios of the {s.area} feature: {missing}"


def test_the_catalogue_in_the_docs_is_the_catalogue_in_the_code() -> None:
    doc = (ROOT / "docs" / "selftest.md").read_text()
    m = re.search(r"<!-- catalogue:begin -->\n(.*?)\n<!-- catalogue:end -->", doc, re.S)
    assert m, "docs/selftest.md lost its catalogue markers"
    assert m.group(1) == catalogue_markdown(), (
        "docs/selftest.md is out of date; paste gate.proof.selftest.catalogue_markdown() between the markers"
    )


def test_a_selection_is_the_defects_named_plus_the_areas_named() -> None:
    assert [s.name for s in select()] == list(catalogue())
    signing = [s.name for s in select(areas=["signing"])]
    assert signing and all(catalogue()[n].area == "signing" for n in signing)
    both = [s.name for s in select(["server-header-leak", "request-id-reused"], ["drill"])]
    assert both == ["server-header-leak", "request-id-reused", *DRILL_DEFECTS]
    with pytest.raises(UsageError, match=r"unknown defect.*no-such-defect.*--list"):
        select(["no-such-defect"])
    with pytest.raises(UsageError, match=r"unknown area.*smokes: use one of headers, rate_limit"):
        select(areas=["smokes"])


@pytest.mark.parametrize("argv", [["--defect", "no-such-defect"], ["--area", "smokes"]])
def test_an_unknown_defect_or_area_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["selftest", *argv]) == 2
    assert "relay-gate selftest: unknown" in capsys.readouterr().err


def test_list_prints_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest", "--list", "--area", "drill"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == list(DRILL_DEFECTS)
    assert all(ln.split()[1:3] == ["drill", "tooling"] for ln in lines)


def test_service_and_tooling_defects_are_switched_in_through_their_own_factories() -> None:
    assert catalogue()["server-header-leak"].pytest_args() == ["--defect", "server-header-leak"]
    name = next(iter(DRILL_DEFECTS))
    assert catalogue()[name].pytest_args() == ["-p", "gate.proof.defects_drill", "--drill-defect", name]


# -- judging and reporting -----------------------------------------------------------------------------


def test_a_defect_is_caught_only_by_a_scenario_written_for_it_and_other_failures_are_kept_apart(
    tmp_path: Path,
) -> None:
    clean = feature_run(tmp_path, "passed", A="passed", B="passed", C="passed", D="skipped")
    run = feature_run(tmp_path, A="failed", B="failed", C="passed", D="failed")
    result = judge(subject(caught_by=("A", "C")), run, clean)
    assert result.outcome == "caught"
    # B failed but was not written for this defect: not a catch, recorded apart as unrelated;
    # D did not pass against the clean service: its failure proves nothing about the defect
    assert [s.scenario for s in result.caught_by] == ["A"]
    assert [s.scenario for s in result.unrelated] == ["B"]
    assert result.expected_missing == ["C"]
    # only an unrelated scenario failed: the defect escaped the scenarios designed for it
    alone = judge(subject(caught_by=("A",)), feature_run(tmp_path, A="passed", B="failed"), clean)
    assert (alone.outcome, [s.scenario for s in alone.unrelated]) == ("escaped", ["B"])


def test_an_unrelated_failure_fails_the_selftest_and_is_reported(tmp_path: Path) -> None:
    report = _report(tmp_path, "passed", "caught")
    report.defects[0].unrelated.append(report.defects[0].run.scenarios[0])
    assert report.exit_code == 1 and report.unrelated == ["d0"]
    assert "UNRELATED" in render_table(report.defects)
    assert any("UNRELATED FAILURES" in line for line in verdict_lines(report))
    assert report_json(report)["defects"][0]["unrelated_failures"]


def test_a_defect_no_scenario_fails_against_escapes_and_an_unfinished_run_is_not_judged(
    tmp_path: Path,
) -> None:
    clean = feature_run(tmp_path, "passed", A="passed", B="passed")
    escaped = judge(subject(), feature_run(tmp_path, "passed", A="passed", B="passed"), clean)
    assert (escaped.outcome, escaped.caught_by, escaped.expected_missing) == ("escaped", [], ["A"])
    broken = feature_run(tmp_path, "infrastructure", A="failed")
    assert judge(subject(), broken, clean).outcome == "error"


def _report(tmp_path: Path, clean_status: str, *outcomes: str) -> Report:
    report = Report(results=tmp_path, backend="embedded", run_id="r1", duration_s=42.0)
    report.clean = feature_run(tmp_path / "selftest" / "runs" / "clean", clean_status, A="passed")
    for i, outcome in enumerate(outcomes):
        run = feature_run(tmp_path / "selftest" / "runs" / f"d{i}", A="failed")
        caught = run.scenarios if outcome == "caught" else []
        report.defects.append(DefectResult(subject(f"d{i}"), run, outcome, caught, []))  # type: ignore[arg-type]
    return report


@pytest.mark.parametrize(
    ("clean", "outcomes", "code"),
    [
        ("passed", ("caught", "caught"), 0),
        ("passed", ("caught", "escaped"), 1),
        ("failed", (), 1),  # the clean service fails: nothing can be judged, and that is a finding
        ("passed", ("caught", "error"), 5),
        # one precedence (gate/verdict.py): an escaped defect is a false criterion, and outranks a run
        # that did not finish
        ("passed", ("escaped", "error"), 1),
        ("infrastructure", (), 5),
    ],
)
def test_exit_code(tmp_path: Path, clean: str, outcomes: tuple[str, ...], code: int) -> None:
    assert _report(tmp_path, clean, *outcomes).exit_code == code


def test_the_table_lists_each_catching_scenario_on_its_own_line(tmp_path: Path) -> None:
    report = _report(tmp_path, "passed", "caught", "escaped", "error")
    report.defects[0].caught_by = [Scenario("F", "First", "failed"), Scenario("F", "Second", "failed")]
    report.defects[2].run.message = "relay did not start"
    lines = render_table(report.defects).splitlines()
    assert lines[0].split() == ["defect", "area", "time", "caught", "by"]
    assert lines[1].split()[:4] == ["d0", "headers", "3.2", "s"] and lines[1].endswith("First")
    assert lines[2].strip() == "Second" and lines[2].index("Second") == lines[1].index("First")
    assert lines[3].startswith("d1") and "ESCAPED: no scenario failed (0 passed, 0 skipped)" in lines[3]
    assert lines[4].startswith("d2") and lines[4].endswith("ERROR: relay did not start")


def test_selftest_json_records_outcomes_catchers_and_durations(tmp_path: Path) -> None:
    report = _report(tmp_path, "passed", "caught", "escaped")
    doc = json.loads(write_report(report).read_text())
    assert doc["schema"] == "relay-gate/selftest@1" and doc["run_id"] == "r1"
    assert (doc["verdict"], doc["exit_code"], doc["escaped"]) == ("FAILED", 1, ["d1"])
    assert doc["totals"] == {"defects": 2, "caught": 1, "escaped": 1, "errors": 0, "caught_pct": 50.0}
    first = doc["defects"][0]
    assert first["outcome"] == "caught" and first["caught_by"] == [
        {"feature": "Feature", "scenario": "A", "reason": "A failed"}
    ]
    assert first["results"] == "selftest/runs/d0" and first["duration_s"] == 3.25
    assert first["scenarios"] == {"passed": 0, "failed": 1, "skipped": 0, "not run": 0}
    assert doc["clean"]["status"] == "passed" and doc["clean"]["results"] == "selftest/runs/clean"
    assert doc["figures"]["total_s"] == 42.0
    assert doc["figures"]["per_defect_s"] == {"min": 3.25, "median": 3.2, "max": 3.25}


# -- the orchestration, with stand-in runs ---------------------------------------------------------------


def fake_runs(monkeypatch: pytest.MonkeyPatch, outcomes: dict[str, dict[str, str]]) -> list[str | None]:
    """Replace the child pytest: the run of ``clean`` or of a defect has the scenario outcomes given."""
    calls: list[str | None] = []

    def run(*, results: Path, backend: str, markexpr: str | None, extra: list[str]) -> FeatureRun:
        label = extra[-1] if extra else "clean"
        calls.append(markexpr)
        scenarios = outcomes[label]
        status = "failed" if "failed" in scenarios.values() else "passed"
        return feature_run(results, status, **scenarios)

    monkeypatch.setattr(gate.proof.selftest, "run_features", run)
    return calls


def test_each_defect_runs_its_area_after_a_passing_clean_run_and_an_escape_fails_the_selftest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_runs(
        monkeypatch,
        {
            "clean": {"A": "passed", "B": "passed"},
            "x": {"A": "failed", "B": "passed"},
            "y": {"A": "passed", "B": "passed"},
        },
    )
    subjects = [subject("x", "headers", ("A",)), subject("y", "drill", ("B",))]
    report = gate.proof.selftest.run_selftest(
        subjects, results=tmp_path, run_id="r9", backend="embedded", whole_gate=False
    )
    out = capsys.readouterr().out
    assert calls == ["headers or drill", "headers", "drill"]
    assert report.exit_code == 1 and report.escaped == ["y"]
    assert "[ 0/2] clean service (headers or drill) ... passed: 2 passed, 0 failed, 0 skipped in 3.2 s" in out
    assert "[ 1/2] x (headers) ... caught by 1 scenario(s) in 3.2 s" in out
    assert "[ 2/2] y (drill) ... ESCAPED in 3.2 s" in out
    assert "caught 1 of 2 defect(s) (50 %)" in out and "ESCAPED (the gate cannot fail against them): y" in out
    assert json.loads((tmp_path / "selftest" / "selftest.json").read_text())["run_id"] == "r9"


def test_a_clean_service_that_fails_a_scenario_stops_the_selftest_before_any_defect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_runs(monkeypatch, {"clean": {"A": "passed", "B": "failed"}})
    report = gate.proof.selftest.run_selftest(
        [subject("x")], results=tmp_path, run_id="r", backend="embedded", whole_gate=True
    )
    out = capsys.readouterr().out
    assert calls == [None] and report.defects == [] and report.exit_code == 1
    assert "  FAILED  B\n          B failed" in out
    assert "the gate fails against the clean service: no defect can be judged until it passes" in out
    assert "no defect was run: the clean service must pass first" in out


# -- the child run, with a stand-in for pytest -----------------------------------------------------------

FAKE_PYTEST = """
import json, pathlib, sys, threading
results = pathlib.Path(sys.argv[1])
mode = sys.argv[2]
if mode == "hang":  # blocks until the selftest's timeout ends it
    threading.Event().wait()
if mode == "infra":
    (results / "features" / "infrastructure-error.txt").write_text("redis did not start\\n")
    sys.exit(5)
outcome = {"pass": "passed", "fail": "failed", "skip": "skipped"}[mode]
doc = {"schema": "relay-gate/features@1", "features": [{"feature": "F", "scenarios": [
    {"scenario": "S", "outcome": outcome, "reason": "because" if outcome != "passed" else None}]}]}
(results / "features" / "summary.json").write_text(json.dumps(doc))
sys.exit(1 if mode == "fail" else 0)
"""


@pytest.mark.parametrize(
    ("mode", "status", "message"),
    [
        ("pass", "passed", None),
        ("fail", "failed", None),
        ("skip", "infrastructure", "no scenario ran: because"),
        ("infra", "infrastructure", "redis did not start"),
        ("hang", "infrastructure", "pytest did not finish within 1 s"),
    ],
)
def test_a_child_run_is_classified_from_its_summary_and_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, status: str, message: str | None
) -> None:
    script = tmp_path / "fake_pytest.py"
    script.write_text(textwrap.dedent(FAKE_PYTEST))
    monkeypatch.setattr(
        gate.proof.selftest, "pytest_argv", lambda ns, results: [sys.executable, str(script), str(results)]
    )
    run = run_features(results=tmp_path / "run", backend="embedded", markexpr=None, extra=[mode], timeout_s=1)
    assert run.status == status
    assert (run.message or "").startswith(message or ""), run.message
    assert run.message is None or str(tmp_path / "run" / "pytest.log") in run.message
    assert (tmp_path / "run" / "pytest.log").read_text().startswith(f"$ {sys.executable} {script}")


# -- end to end, on real stacks ------------------------------------------------------------------------


def selftest_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", "selftest", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.stack
def test_selftest_on_a_service_and_a_tooling_defect_passes_and_says_what_caught_them(tmp_path: Path) -> None:
    results = tmp_path / "run"
    proc = selftest_cli("--defect", "headers-missing-on-500", "--defect", "backup-dump-skips-a-table",
                        "--results", str(results))  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "[ 0/2] clean service (headers or drill) ... passed: 23 passed, 0 failed, 0 skipped" in out
    assert re.search(
        r"\[ 1/2\] headers-missing-on-500 \(headers\) \.\.\. caught by 1 scenario\(s\) in \d", out
    )
    assert re.search(r"\[ 2/2\] backup-dump-skips-a-table \(drill\) \.\.\. caught by 2 scenario\(s\) in", out)
    table = out[out.index("defect ") :].splitlines()
    assert table[1].startswith("headers-missing-on-500") and table[1].endswith(
        DEFECTS["headers-missing-on-500"].caught_by[0]
    )
    assert (
        table[2].startswith("backup-dump-skips-a-table")
        and table[3].strip() in DRILL_DEFECTS["backup-dump-skips-a-table"].caught_by
    )
    assert "caught 2 of 2 defect(s) (100 %)" in out
    doc = json.loads((results / "selftest" / "selftest.json").read_text())
    assert (doc["schema"], doc["verdict"], doc["exit_code"]) == ("relay-gate/selftest@1", "PASSED", 0)
    assert doc["clean"]["markexpr"] == "headers or drill" and doc["clean"]["scenarios"]["passed"] == 23
    by_name = {d["name"]: d for d in doc["defects"]}
    drill = by_name["backup-dump-skips-a-table"]
    assert drill["kind"] == "tooling" and drill["outcome"] == "caught" and not drill["expected_missing"]
    assert all("bulk_events is missing from the restore" in c["reason"] for c in drill["caught_by"])
    for d in doc["defects"]:
        summary = results / d["results"] / "features" / "summary.json"
        assert summary.is_file() and d["duration_s"] > 0
    run = json.loads((results / "run.json").read_text())
    assert run["command"] == "selftest" and run["exit_code"] == 0 and run["run_id"] == doc["run_id"]


@pytest.mark.stack
def test_a_defect_the_scenarios_run_cannot_see_escapes_and_fails_the_selftest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real defect (Server and X-Powered-By leak) really switched in, but filed under the drill area:
    the restore-drill scenarios never look at response headers, so nothing fails. That is exactly the
    situation the selftest exists to expose."""
    real = catalogue()
    misfiled = {"server-header-leak": Subject(**{**vars(real["server-header-leak"]), "area": "drill"})}
    monkeypatch.setattr(gate.proof.selftest, "catalogue", lambda: misfiled)
    code = main(["selftest", "--defect", "server-header-leak", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "[ 1/1] server-header-leak (drill) ... ESCAPED in" in out
    assert "ESCAPED (the gate cannot fail against them): server-header-leak" in out
    doc = json.loads((tmp_path / "selftest" / "selftest.json").read_text())
    (entry,) = doc["defects"]
    assert (entry["outcome"], entry["caught_by"], doc["escaped"]) == ("escaped", [], ["server-header-leak"])
    assert entry["scenarios"]["passed"] == 14 and doc["verdict"] == "FAILED"


# -- the tooling defects do what they say ----------------------------------------------------------------


@pytest.fixture
def source(pg_database: str) -> str:
    seed_bulk_table(pg_database, rows=2000)
    return pg_database


def drill_with(defect: str, source: str, tmp_path: Path) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as mp:
        DRILL_DEFECTS[defect].install(mp)
        take_backup(source, tmp_path / "backups")
        result = run_drill(DrillOptions(source, tmp_path / "backups", restore_to="same"))
    return result.doc


@pytest.mark.stack
def test_a_dump_without_a_table_its_manifest_promises_fails_the_drill(source: str, tmp_path: Path) -> None:
    doc = drill_with("backup-dump-skips-a-table", source, tmp_path)
    assert doc["verdict"] == "FAILED"
    assert (
        doc["reason"] == "the restore differs from the backup: public.bulk_events is missing from the restore"
    )
    # the patch is gone with the context: the same tools then pass
    take_backup(source, tmp_path / "backups")
    assert run_drill(DrillOptions(source, tmp_path / "backups", restore_to="same")).passed


@pytest.mark.stack
def test_counts_read_outside_the_snapshot_fail_the_drill(source: str, tmp_path: Path) -> None:
    doc = drill_with("manifest-counted-outside-snapshot", source, tmp_path)
    rows = 2000
    assert doc["reason"] == (
        f"the restore differs from the backup: public.bulk_events has {rows} rows, the backup "
        f"{rows + drill_defects.LIVE_ROWS}"
    )


@pytest.mark.stack
def test_a_drill_with_a_fixed_table_list_leaves_a_table_unchecked(source: str, tmp_path: Path) -> None:
    """The drill itself passes (its comparison is the defect): only a scenario that holds the drill to
    every table of the backup's manifest can tell."""
    doc = drill_with("drill-compares-a-fixed-table-list", source, tmp_path)
    assert doc["verdict"] == "PASSED"
    assert [t["table"] for t in doc["tables"]] == ["public.alembic_version", "public.audit_log"]
    assert doc["backup"]["tables"] == 3 and doc["summary"]["tables"] == 2


def test_the_help_names_every_area() -> None:
    """gate/commands/selftest.py keeps its imports light (``--help`` must be quick), so it spells the
    areas out: every area of the catalogue must be among them."""
    from gate.commands import selftest as command

    sub = argparse.ArgumentParser().add_subparsers()
    command.register(sub)
    parser = sub.choices["selftest"]
    listed = next(a.help for a in parser._actions if a.dest == "areas")
    assert listed is not None and all(area in listed for area in AREAS), listed
