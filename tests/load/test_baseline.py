"""A load run against a baseline (load/baseline.py, ``relay-gate load --baseline``): the regression
rules, the verdict they join, runs that cannot be compared and baselines that cannot be read."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.errors import EXIT_INVALID, EXIT_OK, EXIT_SLO, EXIT_USAGE, InvalidEvidence
from load import baseline, slos
from load.recorder import Recorder
from tests.load.factory import document, record, record_values, roundtrip

RULES = slos.Regression()


def latencies(n: int, seed: int, *, median_ms: float = 1.5, plus_ms: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(median_ms), 0.42) + plus_ms for _ in range(n)]


def run(seed: int, *, n: int = 2500, preview_plus_ms: float = 0.0, **kwargs: Any) -> dict[str, Any]:
    """A load.json of a valid run: list, preview and execute, p99 around 4 ms (execute ~40 ms)."""
    rec = Recorder()
    record_values(rec, "list", latencies(n, seed))
    record_values(rec, "preview", latencies(n, seed + 1, plus_ms=preview_plus_ms))
    record_values(rec, "execute", latencies(n // 2, seed + 2, median_ms=15.0))
    return roundtrip(document(rec, **kwargs))


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def against(
    base_doc: dict[str, Any], doc: dict[str, Any], tmp_path: Path, rules: slos.Regression = RULES
) -> dict[str, Any]:
    base = baseline.read(write(tmp_path / "base" / "load" / "load.json", base_doc))
    return baseline.attach(doc, base, rules)


# -- the regression rules ------------------------------------------------------------------------------


def test_two_runs_of_the_same_build_show_no_significant_change(tmp_path: Path) -> None:
    out = against(run(1), run(10), tmp_path)
    c = out["comparison"]
    assert c["verdict"] == {"exit_code": EXIT_OK, "outcome": "pass", "reasons": []}
    assert out["verdict"]["exit_code"] == EXIT_OK
    for name in ("list", "preview", "execute"):
        e = c["endpoints"][name]
        assert e["status"] == "no_significant_change", e["note"]
        assert set(e["percentiles"]) == {"p50", "p95", "p99"} and e["judged"] == "p99"
        lo, hi = e["percentiles"]["p99"]["interval_ms"]
        assert lo <= e["percentiles"]["p99"]["shift_ms"] <= hi


def test_5_ms_more_on_preview_is_a_regression_of_preview_and_a_breach(tmp_path: Path) -> None:
    out = against(run(1), run(10, preview_plus_ms=5.0), tmp_path)
    preview = out["comparison"]["endpoints"]["preview"]
    assert preview["status"] == "regression" and preview["outcome"] == "breach"
    p99 = preview["percentiles"]["p99"]
    assert p99["interval_ms"][0] > 0 and p99["shift_pct"] > 25
    assert out["comparison"]["endpoints"]["list"]["outcome"] == "pass"
    assert out["verdict"]["exit_code"] == EXIT_SLO and out["verdict"]["outcome"] == "breach"
    (reason,) = out["verdict"]["reasons"]
    assert reason.startswith("against the baseline: preview p99 ") and "regressed" in reason
    # the SLO verdict (every p99 far inside 50 ms) is kept beside the combined one
    assert out["verdict"]["slos"]["exit_code"] == EXIT_OK


def test_p99_doubled_on_list_is_a_regression_of_list_only(tmp_path: Path) -> None:
    rec = Recorder()
    record_values(rec, "list", [2 * ms for ms in latencies(2500, 10)])  # every latency doubled
    record_values(rec, "preview", latencies(2500, 11))
    record_values(rec, "execute", latencies(1250, 12, median_ms=15.0))
    out = against(run(1), roundtrip(document(rec)), tmp_path)
    endpoints = out["comparison"]["endpoints"]
    p99 = endpoints["list"]["percentiles"]["p99"]
    assert 80 < p99["shift_pct"] < 120 and p99["interval_ms"][0] > 0, p99
    assert endpoints["list"]["status"] == "regression"
    assert [n for n, e in endpoints.items() if e["outcome"] != "pass"] == ["list"]
    assert out["verdict"]["exit_code"] == EXIT_SLO
    assert out["verdict"]["reasons"][0].startswith("against the baseline: list p99 ")


def _tail(scale: int, factor: float) -> dict[str, Any]:
    """preview: 98 % at 1 ms, 2 % spread over 2 .. 40 ms (times ``factor``), ``scale`` x 1,000 samples."""
    rec = Recorder()
    record(rec, "list", 2000, ms=2.0)
    record(rec, "execute", 1000, ms=20.0)
    record(rec, "preview", 980 * scale, ms=1.0)
    for i in range(20):
        record(rec, "preview", scale, ms=(2 + 2 * i) * factor)
    return roundtrip(document(rec))


def test_a_shift_too_small_for_the_sample_to_resolve_is_not_a_regression(tmp_path: Path) -> None:
    # the same 30 % worse tail: p99 20 -> 26 ms in both cases. With 1,000 samples per run (enough for
    # the rule), p99 sits among 20 tail samples, the interval spans zero and nothing is claimed ...
    small = against(_tail(1, 1.0), _tail(1, 1.3), tmp_path)
    preview = small["comparison"]["endpoints"]["preview"]
    p99 = preview["percentiles"]["p99"]
    assert (p99["baseline_ms"], p99["current_ms"], p99["shift_pct"]) == (20.015, 26.015, 30.0)
    assert p99["interval_ms"][0] < 0 < p99["interval_ms"][1]
    assert preview["status"] == "no_significant_change" and preview["outcome"] == "pass"
    assert small["verdict"]["exit_code"] == EXIT_OK
    # ... with 20 times the samples the same shift is resolved, and is a regression
    large = against(_tail(20, 1.0), _tail(20, 1.3), tmp_path)
    preview = large["comparison"]["endpoints"]["preview"]
    assert preview["percentiles"]["p99"]["shift_pct"] == 30.0
    assert preview["percentiles"]["p99"]["interval_ms"][0] > 0 and preview["status"] == "regression"
    assert large["verdict"]["exit_code"] == EXIT_SLO


def test_significantly_slower_but_within_the_allowance_is_not_a_regression(tmp_path: Path) -> None:
    base, ours = run(1, n=20_000), run(10, n=20_000, preview_plus_ms=0.5)  # p99 ~4 ms -> ~4.5 ms
    preview = against(base, ours, tmp_path)["comparison"]["endpoints"]["preview"]
    assert preview["percentiles"]["p99"]["interval_ms"][0] > 0
    assert preview["status"] == "slower_within_allowance" and preview["outcome"] == "pass"
    strict = slos.parse_regression({"endpoints": {"preview": {"max_increase_pct": 5}}})
    preview = against(base, ours, tmp_path, strict)["comparison"]["endpoints"]["preview"]
    assert preview["status"] == "regression" and preview["rule"]["max_increase_pct"] == 5


def test_an_override_can_judge_another_percentile_or_allow_more(tmp_path: Path) -> None:
    rules = slos.parse_regression(
        {"endpoints": {"preview": {"max_increase_pct": 1000}, "list": {"percentile": 50}}}
    )
    out = against(run(1), run(10, preview_plus_ms=5.0), tmp_path, rules)
    assert out["comparison"]["endpoints"]["preview"]["status"] == "slower_within_allowance"
    assert out["comparison"]["endpoints"]["preview"]["outcome"] == "pass"
    assert out["comparison"]["endpoints"]["list"]["judged"] == "p50"
    assert out["verdict"]["exit_code"] == EXIT_OK
    assert out["comparison"]["rules"]["endpoints"]["list"]["percentile"] == 50


def test_too_few_samples_is_not_valid_evidence_but_a_regression_elsewhere_still_breaches(
    tmp_path: Path,
) -> None:
    out = against(run(1, n=600), run(10, n=600), tmp_path)
    e = out["comparison"]["endpoints"]["list"]
    assert e["status"] == "too_few_samples" and e["outcome"] == "invalid"
    assert "600 baseline / 600 current samples" in e["note"] and "1000 in each run" in e["note"]
    assert out["comparison"]["verdict"]["exit_code"] == EXIT_INVALID
    rules = slos.parse_regression({"endpoints": {"preview": {"min_samples": 500}}})
    out = against(run(1, n=600), run(10, n=600, preview_plus_ms=5.0), tmp_path, rules)
    assert out["comparison"]["endpoints"]["preview"]["outcome"] == "breach"
    assert out["comparison"]["verdict"]["exit_code"] == EXIT_SLO  # a breach outranks invalid


def test_a_baseline_that_was_not_valid_evidence_makes_the_comparison_invalid(tmp_path: Path) -> None:
    bad = run(1, cpu=(99.0,) * 10)  # a saturated generator
    out = against(bad, run(10, preview_plus_ms=5.0), tmp_path)
    preview = out["comparison"]["endpoints"]["preview"]
    assert preview["status"] == "regression" and preview["outcome"] == "invalid"
    assert "the baseline: generator_cpu" in preview["note"]


def test_a_run_that_missed_its_rate_cannot_earn_a_pass_but_its_regression_stands(tmp_path: Path) -> None:
    out = against(run(1), run(10, preview_plus_ms=5.0, achieved=80.0), tmp_path)
    endpoints = out["comparison"]["endpoints"]
    assert endpoints["preview"]["outcome"] == "breach"
    assert endpoints["list"]["outcome"] == "invalid" and "achieved_rate" in endpoints["list"]["note"]


def test_the_comparison_recomputes_from_the_file_alone(tmp_path: Path) -> None:
    out = roundtrip(against(run(1), run(10, preview_plus_ms=5.0), tmp_path))
    judged = baseline.recompute(out, {k: out[k] for k in ("slos", "budget", "validity", "verdict")}, None)
    assert judged["comparison"]["endpoints"] == out["comparison"]["endpoints"]
    assert judged["verdict"] == out["verdict"]
    # with other rules: preview may be 200 % worse
    lenient = slos.parse_regression({"max_increase_pct": 200})
    again = baseline.recompute(out, judged, lenient)
    assert again["verdict"]["exit_code"] == EXIT_OK
    out["comparison"]["baseline"]["endpoints"]["list"]["hdr"] = "SElTVEZBQUFB"
    with pytest.raises(InvalidEvidence, match="cannot be recomputed"):
        baseline.recompute(out, judged, None)


# -- runs that cannot be compared ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_kwargs", "ours_kwargs", "differs"),
    [
        ({}, {"kind": "closed"}, "the model (baseline open, this run closed)"),
        ({"rate": 100.0}, {"rate": 120.0}, "the arrival rate (baseline 100 req/s, this run 120)"),
        (
            {},
            {"weights": {"list": 1, "preview": 1, "execute": 0}},
            "the journey weights (baseline list=4,preview=4,execute=2, this run list=1,preview=1,execute=0)",
        ),
        (
            {"kind": "closed", "users": 10},
            {"kind": "closed", "users": 20},
            "the users (baseline 10, this run 20)",
        ),
    ],
)
def test_runs_of_another_model_rate_or_mix_are_refused_naming_the_difference(
    tmp_path: Path, base_kwargs: dict[str, Any], ours_kwargs: dict[str, Any], differs: str
) -> None:
    base = baseline.read(write(tmp_path / "base.json", run(1, n=50, **base_kwargs)))
    with pytest.raises(baseline.Incomparable) as info:
        baseline.attach(run(2, n=50, **ours_kwargs), base, RULES)
    assert differs in str(info.value) and str(tmp_path / "base.json") in str(info.value)
    assert info.value.exit_code == EXIT_USAGE


def test_the_same_mix_in_other_numbers_compares() -> None:
    base = baseline.Baseline(Path("b.json"), run(1, n=50, weights={"list": 4, "preview": 4, "execute": 2}))
    model = baseline.planned_model(
        rate=100.0, users=30, think_time=(0.5, 1.5), weights={"list": 2, "preview": 2, "execute": 1}
    )
    baseline.check_comparable(base, model)  # another pool of users is the same open-model load


# -- baselines that cannot be read ---------------------------------------------------------------------


def _bad_baselines(tmp_path: Path) -> list[tuple[Path, str]]:
    good = run(1, n=50)
    foreign = write(tmp_path / "run.json", {"schema": "relay-gate/run@1", "run_id": "x"})
    future = write(tmp_path / "future.json", {**good, "schema": "relay-gate/load@2"})
    corrupt = json.loads(json.dumps(good))
    corrupt["endpoints"]["list"]["hdr"]["corrected"] = "SElTVEZBQUFB"
    no_model = {k: v for k, v in good.items() if k != "model"}
    (tmp_path / "empty-results").mkdir()
    (tmp_path / "notjson.json").write_text("{ nope")
    return [
        (tmp_path / "missing.json", "does not exist"),
        (tmp_path / "empty-results", "without load/load.json"),
        (tmp_path / "notjson.json", "is not a load.json (not readable JSON"),
        (foreign, "is not a load.json (schema: relay-gate/run@1)"),
        (future, "is a relay-gate/load@2 document; this relay-gate compares relay-gate/load@1"),
        (write(tmp_path / "corrupt.json", corrupt), "incomplete or corrupt"),
        (write(tmp_path / "no-model.json", no_model), "incomplete or corrupt"),
    ]


def test_a_baseline_that_is_not_a_load_json_of_this_version_is_a_usage_error_naming_it(
    tmp_path: Path,
) -> None:
    for path, message in _bad_baselines(tmp_path):
        with pytest.raises(baseline.BaselineError) as info:
            baseline.read(path)
        assert message in str(info.value) and str(path) in str(info.value), (path, info.value)
        assert info.value.exit_code == EXIT_USAGE


def test_a_results_folder_names_its_load_json(tmp_path: Path) -> None:
    path = write(tmp_path / "r1" / "load" / "load.json", run(1, n=50))
    assert baseline.read(tmp_path / "r1").path == path


# -- the CLI -----------------------------------------------------------------------------------------


def gate(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate.cli", *argv], capture_output=True, text=True, timeout=120, env=os.environ
    )


def test_recompute_with_a_baseline_compares_two_finished_runs(tmp_path: Path) -> None:
    base = write(tmp_path / "base" / "load" / "load.json", run(1))
    ours = write(tmp_path / "ours.json", run(10, preview_plus_ms=5.0))
    proc = gate("load", "--recompute", str(ours), "--baseline", str(tmp_path / "base"))
    assert proc.returncode == EXIT_SLO, proc.stdout + proc.stderr
    assert "against the baseline test" in proc.stdout and "REGRESSION [BREACH]" in proc.stdout
    assert "verdict: BREACH (exit 3)" in proc.stdout and "against the baseline: preview p99" in proc.stdout
    same = gate("load", "--recompute", str(write(tmp_path / "same.json", run(10))), "--baseline", str(base))
    assert same.returncode == EXIT_OK, same.stdout + same.stderr
    assert "no significant change [PASS]" in same.stdout


def test_a_bad_or_incomparable_baseline_stops_load_and_run_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", "--baseline", str(tmp_path / "missing.json")]) == EXIT_USAGE
    assert "missing.json does not exist" in capsys.readouterr().err
    base = write(tmp_path / "base.json", run(1, n=50, rate=100.0))
    assert main(["load", "--baseline", str(base), "--rate", "120"]) == EXIT_USAGE
    assert "the arrival rate (baseline 100 req/s, this run 120)" in capsys.readouterr().err
    # another schema version, or not a load.json at all: exit 2 naming the file, before anything starts
    future = write(tmp_path / "future.json", {**run(1, n=50), "schema": "relay-gate/load@2"})
    assert main(["load", "--baseline", str(future)]) == EXIT_USAGE
    assert f"{future} is a relay-gate/load@2 document" in capsys.readouterr().err
    drill = write(tmp_path / "drill.json", {"schema": "relay-gate/drill@1"})
    assert main(["run", "--baseline", str(drill), "--results", str(tmp_path / "r")]) == EXIT_USAGE
    assert f"{drill} is not a load.json" in capsys.readouterr().err
    # relay-gate run passes the baseline to its load step, and checks it before the first step
    argv = ["run", "--baseline", str(base), "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")]
    assert main(argv) == EXIT_USAGE
    assert "the arrival rate (baseline 100 req/s, this run 120)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_resolved_shift_inside_the_noise_band_is_no_significant_change(tmp_path: Path) -> None:
    base, ours = run(1, n=20_000), run(10, n=20_000, preview_plus_ms=0.3)  # p99 ~4 ms -> ~4.3 ms
    quiet = slos.parse_regression({"noise_pct": 10})
    preview = against(base, ours, tmp_path, quiet)["comparison"]["endpoints"]["preview"]
    p99 = preview["percentiles"]["p99"]
    assert p99["interval_ms"][0] > 0 and 0 < p99["shift_pct"] <= 10, p99  # resolved, but small
    assert preview["status"] == "no_significant_change" and "within the +-10 %" in preview["note"]
    # with no noise band the same shift is "slower, within the allowance"
    exact = slos.parse_regression({"noise_pct": 0})
    preview = against(base, ours, tmp_path, exact)["comparison"]["endpoints"]["preview"]
    assert preview["status"] == "slower_within_allowance"


def test_a_noise_band_wider_than_the_allowance_is_refused() -> None:
    with pytest.raises(slos.SloSpecError, match=r"noise_pct \(30\) must not exceed max_increase_pct \(25\)"):
        slos.parse_regression({"noise_pct": 30})
    assert slos.parse_regression({"max_increase_pct": 5}).rule.noise_pct == 5  # follows the allowance
