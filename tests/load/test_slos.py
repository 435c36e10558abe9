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
