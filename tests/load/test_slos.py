"""The SLO spec: the seed's values by default, and loud, key-naming errors for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import EXIT_USAGE
from load import slos


def test_the_default_spec_holds_the_seed_slos() -> None:
    spec = slos.load()
    assert spec.availability_pct == 99.9
    lst, prv, exe = spec.endpoints["list"], spec.endpoints["preview"], spec.endpoints["execute"]
    assert [(s.percentile, s.max_ms) for s in lst.latency] == [(99.0, 50.0)]
    assert [(s.percentile, s.max_ms) for s in prv.latency] == [(99.0, 50.0)]
    assert [(s.percentile, s.max_ms) for s in exe.latency] == [(95.0, 1200.0)]
    assert (lst.error_rate_max_pct, prv.error_rate_max_pct, exe.error_rate_max_pct) == (0.5, 0.5, 1.0)
    # p99 needs 1,000 samples by default, p95 200
    assert lst.latency[0].min_samples == 1000 and exe.latency[0].min_samples == 200
    assert spec.validity.rate_tolerance_pct == 5.0


def test_min_samples_and_requests_defaults() -> None:
    assert slos.default_min_samples(99.9) == 10_000
    assert slos.default_min_samples(50) == 20
    assert slos.default_min_requests(0.5) == 200
    assert slos.default_min_requests(1.0) == 100


def test_the_normalised_spec_parses_back_to_the_same_spec() -> None:
    spec = slos.load()
    again = slos.parse(spec.to_json(), source=spec.source)
    assert again == spec


GOOD_LIST = "[endpoints.list]\nerror_rate_max_pct = 0.5\nlatency = [{ percentile = 99, max_ms = 50 }]\n"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[endpoints.lists]\nerror_rate_max_pct = 0.5\n", "endpoints.lists"),
        (GOOD_LIST.replace("percentile = 99", "percentile = 150"), "endpoints.list.latency[0].percentile"),
        (GOOD_LIST.replace("percentile = 99", "percentile = 0"), "endpoints.list.latency[0].percentile"),
        (GOOD_LIST.replace("max_ms = 50", "max_ms = -5"), "endpoints.list.latency[0].max_ms"),
        (GOOD_LIST.replace("max_ms = 50", 'max_ms = "50ms"'), "endpoints.list.latency[0].max_ms"),
        (GOOD_LIST.replace("percentile = 99", "percentile = true"), "endpoints.list.latency[0].percentile"),
        (GOOD_LIST.replace("0.5", "-0.5"), "endpoints.list.error_rate_max_pct"),
        (GOOD_LIST.replace("0.5", '"0.5"'), "endpoints.list.error_rate_max_pct"),
        (GOOD_LIST.replace("error_rate_max_pct = 0.5\n", ""), "endpoints.list.error_rate_max_pct"),
        (
            GOOD_LIST.replace("max_ms = 50", "max_ms = 50, min_samples = 0"),
            "endpoints.list.latency[0].min_samples",
        ),
        (GOOD_LIST.replace("max_ms = 50", "max_ms = 50, p = 1"), "endpoints.list.latency[0].p"),
        (GOOD_LIST + "threshold = 3\n", "endpoints.list.threshold"),
        ("availability_pct = 100\n" + GOOD_LIST, "availability_pct"),
        ("availability = 99.9\n" + GOOD_LIST, "availability"),
        ("[validity]\nrate_tolerance_pct = -1\n" + GOOD_LIST, "validity.rate_tolerance_pct"),
        ("version = 2\n" + GOOD_LIST, "version"),
        ("[endpoints]\n", "[endpoints] is empty"),
        (GOOD_LIST.replace("latency = [", "latency = 5 #"), "endpoints.list.latency"),
    ],
)
def test_an_invalid_spec_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "slos.toml"
    path.write_text(text)
    with pytest.raises(slos.SloSpecError) as info:
        slos.load(path)
    assert names in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.exit_code == EXIT_USAGE


def test_unreadable_specs_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(slos.SloSpecError, match="does not exist"):
        slos.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[endpoints.list\n")
    with pytest.raises(slos.SloSpecError, match="not valid TOML"):
        slos.load(bad)


def test_a_spec_may_judge_a_subset_of_endpoints(tmp_path: Path) -> None:
    path = tmp_path / "slos.toml"
    path.write_text(GOOD_LIST)
    assert list(slos.load(path).endpoints) == ["list"]


# -- [regression]: what counts as a regression against a baseline run --------------------------------


def test_the_default_regression_rule_is_p99_worse_by_25_pct_with_a_95_pct_interval() -> None:
    r = slos.load().regression
    assert (r.rule.percentile, r.rule.max_increase_pct, r.rule.min_samples) == (99.0, 25.0, 1000)
    assert (r.confidence_pct, r.resamples, r.seed) == (95.0, 10_000, 17)
    assert r.rule_for("preview") == r.rule and not r.endpoints
    # a spec without [regression] gets the same defaults
    assert slos.parse({"endpoints": {"list": {"error_rate_max_pct": 1}}}).regression == r


def test_per_endpoint_regression_overrides_inherit_what_they_do_not_say(tmp_path: Path) -> None:
    path = tmp_path / "slos.toml"
    path.write_text(
        GOOD_LIST + "[regression]\nmax_increase_pct = 10\n"
        "[regression.endpoints.execute]\npercentile = 95\n"
        "[regression.endpoints.preview]\nmax_increase_pct = 50\nmin_samples = 300\n"
    )
    r = slos.load(path).regression
    assert r.rule_for("list") == slos.RegressionRule(99.0, 10.0, 1000)
    assert r.rule_for("execute") == slos.RegressionRule(95.0, 10.0, 200)  # min_samples follows p95
    assert r.rule_for("preview") == slos.RegressionRule(99.0, 50.0, 300)
    assert slos.parse_regression(r.to_json()) == r  # what a comparison records reads back


@pytest.mark.parametrize(
    ("table", "names"),
    [
        ("max_increase_pct = -5", "regression.max_increase_pct"),
        ('max_increase_pct = "25%"', "regression.max_increase_pct"),
        ("percentile = 100", "regression.percentile"),
        ("confidence_pct = 30", "regression.confidence_pct"),
        ("confidence_pct = 100", "regression.confidence_pct"),
        ("resamples = 10", "regression.resamples"),
        ("resamples = 1.5", "regression.resamples"),
        ("seed = -1", "regression.seed"),
        ("min_samples = 0", "regression.min_samples"),
        ("threshold = 3", "regression.threshold"),
        ("[regression.endpoints.checkout]\nmax_increase_pct = 5", "regression.endpoints.checkout"),
        ("[regression.endpoints.list]\nmax_increase_pct = true", "endpoints.list.max_increase_pct"),
        ("[regression.endpoints.list]\np = 99", "regression.endpoints.list.p"),
        ("endpoints = 3", "regression.endpoints must be a table"),
    ],
)
def test_a_bad_regression_value_names_the_key(tmp_path: Path, table: str, names: str) -> None:
    path = tmp_path / "slos.toml"
    path.write_text(GOOD_LIST + "[regression]\n" + table + "\n")
    with pytest.raises(slos.SloSpecError) as info:
        slos.load(path)
    assert names in str(info.value) and str(path) in str(info.value)
    assert info.value.exit_code == EXIT_USAGE
