"""The load step's forecast: an open-model run that will likely come up short of an SLO's samples is
named before it starts, with the duration that would clear it (gate/commands/load.py)."""

from __future__ import annotations

import math
import random

import pytest

from gate.commands.load import _duration_for, _forecast
from load import slos


def _spec() -> slos.SloSpec:
    return slos.load(None)  # the shipped load/slos.toml: execute p95 needs 200 samples


def test_a_run_expecting_exactly_the_minimum_is_warned_with_a_duration_that_clears_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    weights = {"list": 11, "preview": 11, "execute": 2}
    _forecast(_spec(), weights, 24.0, 100)  # 2 executes/s x 100 s: a mean of exactly 200
    err = capsys.readouterr().err
    assert "~200 ± 14 execute requests expected; p95 needs 200" in err
    assert "--duration 123s or more at 24 req/s" in err
    _forecast(_spec(), weights, 24.0, 123)
    assert "execute requests expected" not in capsys.readouterr().err


def test_an_endpoint_without_weight_is_told_to_get_one(capsys: pytest.CaptureFixture[str]) -> None:
    _forecast(_spec(), {"list": 1, "preview": 1, "execute": 0}, 100.0, 60)
    assert "a non-zero execute weight" in capsys.readouterr().err


def test_a_closed_model_is_not_forecast(capsys: pytest.CaptureFixture[str]) -> None:
    _forecast(_spec(), {"list": 1, "preview": 1, "execute": 1}, None, 1)
    assert capsys.readouterr().err == ""


CASES = [(200, 1 / 12, 24.0), (1000, 0.45, 100.0), (20, 0.5, 1.0)]


@pytest.mark.parametrize(("samples", "share", "rate"), CASES)
def test_the_duration_clears_the_minimum_three_deviations_down_and_one_second_less_does_not(
    samples: int, share: float, rate: float
) -> None:
    def low(seconds: int) -> float:
        n = rate * seconds
        return n * share - 3 * math.sqrt(n * share * (1 - share))

    d = _duration_for(samples, share, rate)
    assert d is not None and low(d) >= samples > low(d - 1)


def test_at_that_duration_a_simulated_run_comes_up_short_rarely() -> None:
    rng = random.Random(7)
    d = _duration_for(200, 1 / 12, 24.0)
    assert d is not None
    short = sum(sum(rng.random() < 1 / 12 for _ in range(24 * d)) < 200 for _ in range(400))
    assert short <= 4  # about 0.1 % expected beyond three deviations; 1 % allowed for the seed
