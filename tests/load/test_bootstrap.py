"""The bootstrap of a percentile shift between two HDR histograms (load/bootstrap.py): exact
resampling, the intervals it gives for equal and shifted latencies, reproducibility."""

from __future__ import annotations

import math
import random

import pytest

from load import hdr
from load.bootstrap import Distribution, Shift, shift

# a service whose median is 1.5 ms and whose p99 is about 4 ms
MEDIAN_MS, SIGMA = 1.5, 0.42


def latencies(n: int, seed: int, *, plus_ms: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(MEDIAN_MS), SIGMA) + plus_ms for _ in range(n)]


def distribution(values_ms: list[float]) -> Distribution:
    h = hdr.new()
    for ms in values_ms:
        hdr.record_seconds(h, ms / 1000.0)
    return Distribution.of(h)


def compare(
    base: list[float], ours: list[float], p: float = 99.0, seed: str = "17:preview:99", resamples: int = 4000
) -> Shift:
    return shift(
        distribution(base), distribution(ours), p, resamples=resamples, confidence_pct=95.0, seed=seed
    )


def test_a_percentile_reads_as_hdrhistogram_reads_it() -> None:
    h = hdr.new()
    for ms in latencies(777, 1):
        hdr.record_seconds(h, ms / 1000.0)
    d = Distribution.of(h)
    assert d.total == 777
    for p in (0.1, 25, 50, 90, 95, 99, 99.9, 100):
        assert d.percentile_us(p) == h.get_value_at_percentile(p), p


def test_one_beta_draw_is_distributed_as_the_percentile_of_a_full_resample() -> None:
    """The order-statistic shortcut against the bootstrap done the long way: draw n samples with
    replacement, record them, read p99. Both empirical distributions agree (two-sample
    Kolmogorov-Smirnov distance below the 0.1 % critical value for 800 + 800 draws)."""
    values = latencies(300, 2)
    d = distribution(values)
    rng = random.Random(3)
    brute = []
    for _ in range(800):
        h = hdr.new()
        for ms in rng.choices(values, k=len(values)):
            hdr.record_seconds(h, ms / 1000.0)
        brute.append(int(h.get_value_at_percentile(99)))
    shortcut = [d.resampled_us(99, random.Random(f"s{i}")) for i in range(800)]
    support = sorted(set(brute) | set(shortcut))
    ks = max(abs(sum(b <= v for b in brute) - sum(s <= v for s in shortcut)) / 800 for v in support)
    assert ks < 1.95 * math.sqrt(2 / 800), ks


def test_two_samples_of_the_same_distribution_show_no_significant_change() -> None:
    s = compare(latencies(3000, 10), latencies(3000, 11))
    assert 3.0 < s.baseline_ms < 5.0 and 3.0 < s.current_ms < 5.0
    assert s.low_ms < 0 < s.high_ms and not s.excludes_zero


def test_a_5_ms_shift_on_a_4_ms_p99_is_flagged() -> None:
    s = compare(latencies(3000, 10), latencies(3000, 11, plus_ms=5.0))
    assert s.excludes_zero and s.low_ms > 3.0 and s.high_ms < 7.0
    assert 4.0 < s.shift_ms < 6.0
    assert (s.pct(s.shift_ms) or 0) > 100  # more than doubled


def test_a_faster_run_shows_an_interval_below_zero() -> None:
    s = compare(latencies(3000, 10, plus_ms=5.0), latencies(3000, 11))
    assert s.high_ms < 0 and s.excludes_zero


def test_the_interval_covers_no_change_about_as_often_as_it_claims() -> None:
    """Forty pairs of runs of one build: a 95 % interval should exclude zero in about 2 of them."""
    wrong = sum(
        compare(latencies(600, 100 + i), latencies(600, 200 + i), seed=f"c{i}", resamples=1000).excludes_zero
        for i in range(40)
    )
    assert wrong <= 6


def test_the_same_seed_gives_the_same_interval_and_another_seed_another() -> None:
    base, ours = latencies(2000, 20), latencies(2000, 21, plus_ms=0.3)
    a, b = compare(base, ours), compare(base, ours)
    assert (a.low_ms, a.high_ms) == (b.low_ms, b.high_ms)
    c = compare(base, ours, seed="18:preview:99")
    assert (c.low_ms, c.high_ms) != (a.low_ms, a.high_ms)


def test_a_bootstrap_needs_samples_in_both_runs() -> None:
    with pytest.raises(ValueError, match="samples in both runs"):
        compare([], latencies(10, 1))
