"""``relay-gate rules``: the generated files are current, valid for promtool, and their alerts fire
just above each threshold and stay silent just below (promtool unit tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import main
from gate.observability import DOC_PATH, REPO_ROOT, RULE_FILES, TEST_FILES, Generated, generate
from gate.observability.objectives import POLICY, objectives
from gate.observability.yamltext import dump, number
from load import slos

OUT = REPO_ROOT / "observability"


def _write(root: Path, generated: Generated) -> None:
    for rel, text in generated.outputs.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _spec(**changes: object) -> slos.SloSpec:
    doc = slos.load().to_json()
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = doc
        for part in path:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return slos.parse(doc, source="test.toml")


def test_committed_outputs_are_what_the_spec_generates(generated: Generated) -> None:
    stale = [rel for rel, text in generated.outputs.items() if not (OUT / rel).is_file()
             or (OUT / rel).read_text(encoding="utf-8") != text]  # fmt: skip
    if (REPO_ROOT / DOC_PATH).read_text(encoding="utf-8") != generated.doc:
        stale.append(str(DOC_PATH))
    assert not stale, f"out of date with load/slos.toml: {stale}; run `relay-gate rules` and commit"


def test_check_mode_reports_a_stale_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, doc = tmp_path / "obs", tmp_path / "SLOs.md"
    assert main(["rules", "--out", str(out), "--doc", str(doc)]) == 0
    assert main(["rules", "--out", str(out), "--doc", str(doc), "--check"]) == 0
    (out / RULE_FILES[0]).write_text("groups: []\n")
    assert main(["rules", "--out", str(out), "--doc", str(doc), "--check"]) == 1
    assert "slo-recording.rules.yml is stale" in capsys.readouterr().err
    assert (out / RULE_FILES[0]).read_text() == "groups: []\n"


def test_a_threshold_without_a_bucket_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    spec = tmp_path / "slos.toml"
    spec.write_text(
        "version = 1\n[endpoints.list]\nerror_rate_max_pct = 0.5\n"
        "latency = [{ percentile = 99, max_ms = 60 }]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gate.cli", "rules", "--slos", str(spec), "--out", str(tmp_path / "o"),
         "--doc", str(tmp_path / "SLOs.md")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "endpoints.list.latency[0].max_ms = 60 ms cannot be expressed" in proc.stderr
    assert "50" in proc.stderr  # the buckets it could use are listed
    assert not (tmp_path / "o").exists(), "nothing is written for a spec the generator refuses"


def test_an_invalid_spec_is_exit_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "slos.toml"
    spec.write_text("version = 1\n[endpoints.list]\nerror_rate_max_pct = 0.5\nlatncy = []\n")
    assert main(["rules", "--slos", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "endpoints.list.latncy" in capsys.readouterr().err


def test_objectives_read_latency_as_bucket_ratios_and_budgets() -> None:
    by_slo = {o.slo: o for o in objectives(slos.load())}
    assert set(by_slo) == {
        "list-latency-p99", "list-error-rate", "preview-latency-p99", "preview-error-rate",
        "execute-latency-p95", "execute-error-rate", "availability",
    }  # fmt: skip
    assert by_slo["list-latency-p99"].le == "0.05" and by_slo["list-latency-p99"].budget == pytest.approx(
        0.01
    )
    assert by_slo["execute-latency-p95"].le == "1.2" and by_slo[
        "execute-latency-p95"
    ].budget == pytest.approx(0.05)
    assert by_slo["list-error-rate"].budget == pytest.approx(0.005)
    assert by_slo["availability"].budget == pytest.approx(0.001)
    expr = by_slo["execute-latency-p95"].ratio_expr("1h")
    assert 'http_request_duration_seconds_bucket{route="/actions/execute",le="1.2"}[1h]' in expr


def test_a_tier_that_can_never_fire_is_left_out() -> None:
    # p50: a 50 % budget; 14.4x, 6x and 3x of it are 100 % or more, only the 1x ticket can fire
    spec = _spec(endpoints__list__latency__0__percentile=50.0, endpoints__list__latency__0__min_samples=20)
    g = generate(spec)
    burn = g.outputs[RULE_FILES[1]]
    block = burn.split("alert: ListLatencyP50BudgetBurn")
    assert len(block) == 2, "one rule (ticket) for the p50 SLO, no page"
    assert "severity: ticket" in block[1].split("- alert:")[0]
    assert "never: 14.4x a 50 % budget" in g.doc


def test_seed_alerts_use_the_exported_metrics(generated: Generated) -> None:
    seed = generated.outputs[RULE_FILES[2]]
    for name in ("ActionsErrorRate", "WebhookP95", "LightEndpointP99", "RateLimitBreaches"):
        assert f"alert: {name}" in seed
    assert "http_duration_seconds" not in seed and "path=" not in seed
    assert "rate(webhook_duration_seconds_bucket[5m])" in seed and "> 1.2" in seed
    assert 'http_request_duration_seconds_bucket{route="/actions"}' in seed


def test_yaml_writer_quotes_what_would_read_back_as_something_else() -> None:
    text = dump({"a": "yes", "b": "/x", "c": 'say "hi"', "d": 0.07200000000000001, "e": [], "f": "x\ny"})
    assert text == 'a: "yes"\nb: "/x"\nc: "say \\"hi\\""\nd: 0.072\ne: []\nf: |-\n  x\n  y\n'
    assert number(14.4 * 0.005) == "0.072" and number(3.0) == "3" and number(1e-6) == "0.000001"


# -- promtool --------------------------------------------------------------------------------------------


def test_promtool_checks_the_rule_files(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "check", "rules", *(str(OUT / f) for f in RULE_FILES)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_fire_above_and_stay_silent_below(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "test", "rules", *(str(OUT / f) for f in TEST_FILES)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every objective x tier has an above and a below case, and every seed alert is exercised
    burn = (OUT / TEST_FILES[0]).read_text()
    assert burn.count("(just above)") == burn.count("(just below)") == len(POLICY) * 7
    seed = (OUT / TEST_FILES[1]).read_text()
    for name in ("ActionsErrorRate", "WebhookP95", "LightEndpointP99", "RateLimitBreaches"):
        assert f"alertname: {name}" in seed


def test_the_unit_tests_catch_a_rule_with_the_wrong_threshold(promtool: str, tmp_path: Path) -> None:
    """The generated tests are not vacuous: rules from a different spec (list error target 1 %
    instead of 0.5 %) fail the tests generated from the real one."""
    _write(tmp_path, generate(slos.load()))
    wrong = generate(_spec(endpoints__list__error_rate_max_pct=1.0))
    for rel in RULE_FILES:
        (tmp_path / rel).write_text(wrong.outputs[rel])
    proc = subprocess.run(
        [promtool, "test", "rules", *(str(tmp_path / f) for f in TEST_FILES)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "ListErrorRateBudgetBurn" in proc.stdout + proc.stderr
    assert "ActionsErrorRate list" in proc.stdout + proc.stderr
