"""The pack of a load run compared with a baseline (``relay-gate load --baseline``): both runs side by
side in METRICS-SUMMARY, one criterion per endpoint, and the pack's verdict equal to the load step's
even where run.json records no steps (a lone ``relay-gate load``, whose only say is load.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence.model import load_results
from evidence.render import all_criteria, judge, render
from gate.verdict import Outcome
from tests.evidence.steps_factory import REGRESSED, UNPROVEN, _compared_json


def lone_load(root: Path, load_json: str) -> dict[str, object]:
    """A results folder as a lone ``relay-gate load --baseline`` leaves it: run.json without steps."""
    (root / "load").mkdir(parents=True)
    (root / "load" / "load.json").write_text(load_json)
    doc = json.loads(load_json)
    run = {
        "schema": "relay-gate/run@1", "run_id": root.name, "command": "load",
        "started_at": "2026-12-04T00:00:00Z", "finished_at": "2026-12-04T00:01:00Z",
        "git": {"commit": "1" * 40, "dirty": False}, "versions": {"relay-gate": "0.1.0"},
        "target": {"name": "t", "backend": "embedded"}, "exit_code": doc["verdict"]["exit_code"],
    }  # fmt: skip
    (root / "run.json").write_text(json.dumps(run))
    return dict(doc)


@pytest.mark.parametrize(("which", "code"), [(REGRESSED, 3), (UNPROVEN, 4)])
def test_the_pack_says_what_the_comparison_said_without_a_step_to_lean_on(
    tmp_path: Path, which: str, code: int
) -> None:
    doc = lone_load(tmp_path / "r", _compared_json(which))
    assert doc["verdict"]["exit_code"] == code and doc["verdict"]["slos"]["exit_code"] == 0  # type: ignore[index]
    res = load_results(tmp_path / "r")
    verdict = judge(res)
    # a lone load run leaves the features and the drill NOT RUN (4): only a breach outranks them
    assert verdict.exit_code == code, verdict.line
    comparison = [c.outcome for c in all_criteria(res) if c.area == "regression"]
    expected = [Outcome.PASS, Outcome.BREACH, Outcome.INVALID] if code == 3 else [Outcome.INVALID] * 3
    assert comparison == expected
    rendered = render(tmp_path / "r", tmp_path / "pack")
    manifest = json.loads((rendered.out / "manifest.json").read_text())
    assert manifest["verdict"] == {"code": code, "line": verdict.line}
    metrics = (rendered.out / "METRICS-SUMMARY.md").read_text()
    if which == REGRESSED:
        assert "| preview: p99 not regressed against the baseline run test | **BREACH** |" in metrics
        assert r"preview p99 5.003 -\> 12.007 ms \(\+7.004 ms, \+140 %" in metrics  # escaped for Markdown
        assert "| **p99** | 2000 / 4000 | 5.003 ms | 12.007 ms | +7.004 ms (+140.0 %) |" in metrics
        rule = "A regression: p99 worse by more than 25 % with the interval above zero"
        assert rule in " ".join(metrics.split())
        assert "| REGRESSION |" in metrics
    else:
        assert "| list: p99 not regressed against the baseline run test | **INVALID** |" in metrics
        assert "400 baseline / 2000 current samples" in metrics and "too few samples" in metrics


def test_both_runs_side_by_side_and_a_pass_without_regression(tmp_path: Path) -> None:
    from load import baseline, slos
    from tests.load import factory

    def run() -> factory.Recorder:
        rec = factory.healthy()
        factory.record(rec, "execute", 500, ms=120.0)  # 1,000 samples: enough for p99 in each run
        return rec

    base = baseline.Baseline(Path("b/load/load.json"), factory.roundtrip(factory.document(run())))
    ours = baseline.attach(factory.document(run()), base, slos.Regression())
    assert ours["verdict"]["exit_code"] == 0
    lone_load(tmp_path / "r", json.dumps({"schema": "relay-gate/load@1", **ours}))
    res = load_results(tmp_path / "r")
    assert [c.outcome for c in all_criteria(res) if c.area == "regression"] == [Outcome.PASS] * 3
    metrics = (render(tmp_path / "r", tmp_path / "pack").out / "METRICS-SUMMARY.md").read_text()
    assert "## Against the baseline run" in metrics
    # both runs, named, with their model and SLO verdict, one row each
    assert "| baseline | `test` | — | — |" in metrics and "| this run | `test` | — | — |" in metrics
    assert metrics.count("| open | 100.0 | 10 | list=4, preview=4, execute=2 | pass (exit 0) |") == 2
    assert metrics.count("| no significant change |") == 3  # the table; the criteria say it too


def test_a_run_without_a_baseline_has_no_comparison_criteria(tmp_path: Path) -> None:
    from tests.load import factory

    doc = factory.document(factory.healthy())
    lone_load(tmp_path / "r", json.dumps({"schema": "relay-gate/load@1", **doc}))
    assert all(c.area != "regression" for c in all_criteria(load_results(tmp_path / "r")))
    metrics = (render(tmp_path / "r", tmp_path / "pack").out / "METRICS-SUMMARY.md").read_text()
    assert "Against the baseline" not in metrics
