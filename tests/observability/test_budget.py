"""Error-budget arithmetic for a period, from load.json documents built by the real recorder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import InvalidEvidence, UsageError
from gate.observability.budget import error_budgets, read_load
from load.recorder import Recorder
from tests.load.factory import document, healthy, record, roundtrip

DAY = 86400.0


def _by_slo(doc: dict, **kw: float) -> dict:
    return {b.slo: b for b in error_budgets(doc, **kw)}


def test_a_clean_run_spends_nothing() -> None:
    budgets = _by_slo(roundtrip(document(healthy())))
    a = budgets["availability"]
    assert a.requests == 4500 and a.bad == 0 and a.burn_rate == 0.0 and a.exhausted_in_s is None
    assert a.period_budget_s == pytest.approx(43.2 * 60)  # 99.9 % of 30 days
    assert a.remaining_s == pytest.approx(a.period_budget_s) and a.consumed_pct == 0.0
    assert a.allowed_failures == pytest.approx(4.5)
    assert set(budgets) == {
        "availability",
        "list p99 latency <= 50 ms", "list error rate <= 0.5 %",
        "preview p99 latency <= 50 ms", "preview error rate <= 0.5 %",
        "execute p95 latency <= 1200 ms", "execute error rate <= 1 %",
    }  # fmt: skip


def test_errors_burn_the_budget_at_the_measured_rate() -> None:
    rec = healthy()
    record(rec, "list", 20, ms=4.0, status=500)  # 20 of 2,020 list requests fail
    doc = roundtrip(document(rec))
    budgets = _by_slo(doc, period_s=30 * DAY)
    a = budgets["availability"]
    assert a.requests == 4520 and a.bad == 20
    assert a.error_ratio == pytest.approx(20 / 4520)
    assert a.burn_rate == pytest.approx((20 / 4520) / 0.001)  # ~4.4x: a month's budget in ~6.8 days
    assert a.exhausted_in_s == pytest.approx(30 * DAY / a.burn_rate)
    assert a.consumed_s == pytest.approx(20 / 4520 * 60.0)  # the run lasted 60 s
    assert a.remaining_failures == pytest.approx(4.52 - 20)
    lst = budgets["list error rate <= 0.5 %"]
    assert lst.bad == 20 and lst.requests == 2020 and lst.target_pct == pytest.approx(99.5)
    assert lst.allowed_failures == pytest.approx(10.1)  # what load.json's per-SLO budget says
    assert lst.allowed_failures == pytest.approx(next(
        s["budget"]["allowed"] for s in doc["slos"] if s["endpoint"] == "list" and s["kind"] == "error_rate"
    ))  # fmt: skip
    # a week-long period: the same burn rate, a quarter of the time budget
    week = _by_slo(doc, period_s=7 * DAY)["availability"]
    assert week.burn_rate == pytest.approx(a.burn_rate)
    assert week.period_budget_s == pytest.approx(a.period_budget_s * 7 / 30)


def test_slow_requests_spend_a_latency_budget() -> None:
    rec = Recorder()
    record(rec, "list", 1970, ms=4.0)
    record(rec, "list", 30, ms=80.0)  # 1.5 % slower than 50 ms: a p99 SLO allows 1 %
    budgets = _by_slo(roundtrip(document(rec)))
    lat = budgets["list p99 latency <= 50 ms"]
    assert lat.requests == 2000 and lat.bad == 30
    assert lat.burn_rate == pytest.approx(1.5)
    assert budgets["availability"].bad == 0  # slow is not unavailable


def test_read_load_refuses_what_is_not_a_load_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_load(tmp_path / "missing.json")
    other = tmp_path / "drill.json"
    other.write_text(json.dumps({"schema": "relay-gate/drill@1"}))
    with pytest.raises(InvalidEvidence, match="not a load results file"):
        read_load(other)
    broken = tmp_path / "load.json"
    broken.write_text(json.dumps({"schema": "relay-gate/load@1", "model": {}}))
    with pytest.raises(InvalidEvidence, match="error budget needs"):
        error_budgets(read_load(broken))
    with pytest.raises(UsageError, match="period"):
        error_budgets(roundtrip(document(healthy())), period_s=0)
