"""The verdict from measurements: SLO results, error budgets, validity, and the exit code."""

from __future__ import annotations

import pytest

from gate.errors import EXIT_INFRA, EXIT_INVALID, EXIT_OK, EXIT_SLO
from load import report
from load.recorder import Recorder
from tests.load.factory import check, document, healthy, record, roundtrip, slo


def test_a_healthy_valid_run_passes() -> None:
    doc = document(healthy())
    assert doc["verdict"] == {"exit_code": EXIT_OK, "outcome": "pass", "reasons": []}
    s = slo(doc, "list", "latency")
    assert s["status"] == "pass" and s["threshold_ms"] == 50 and 4.0 <= s["measured_ms"] < 4.01
    assert s["samples"] == 2000 and s["min_samples"] == 1000 and s["basis"] == "corrected"
    assert all(c["ok"] for c in doc["validity"])


def test_a_1249_ms_execute_p95_breaches_the_1_2_s_slo() -> None:
    rec = healthy()
    record(rec, "execute", 60, ms=1249.0)  # 60 of 560: the top 10.7 %
    doc = document(rec)
    s = slo(doc, "execute", "latency")
    assert s["status"] == "fail" and s["measured_ms"] >= 1249.0
    assert doc["verdict"]["exit_code"] == EXIT_SLO and doc["verdict"]["outcome"] == "breach"
    assert "execute p95 latency <= 1200 ms: measured 1249" in doc["verdict"]["reasons"][0]


def test_the_open_model_judges_the_corrected_histogram() -> None:
    rec = healthy()
    record(rec, "list", 40, ms=3.0, lag_ms=1800.0)  # sent on time they would have been fast
    doc = document(rec)
    s = slo(doc, "list", "latency")
    assert s["status"] == "fail" and s["measured_ms"] > 1500 and s["uncorrected_ms"] < 10
    closed = document(rec, kind="closed")
    assert slo(closed, "list", "latency")["basis"] == "uncorrected"
    assert slo(closed, "list", "latency")["status"] == "pass"


def test_too_few_samples_for_a_percentile_is_not_valid_evidence() -> None:
    rec = Recorder()
    record(rec, "list", 999, ms=4.0)
    record(rec, "preview", 2000, ms=4.0)
    record(rec, "execute", 500, ms=4.0)
    doc = document(rec)
    s = slo(doc, "list", "latency")
    assert s["status"] == "invalid" and "999 samples; p99 needs at least 1000" in s["note"]
    assert doc["verdict"]["exit_code"] == EXIT_INVALID


def test_error_budget_arithmetic() -> None:
    rec = Recorder()
    record(rec, "list", 9_990, ms=4.0)
    record(rec, "list", 10, ms=4.0, status=500)
    record(rec, "preview", 2000, ms=4.0)
    record(rec, "execute", 500, ms=4.0)
    doc = document(rec)
    s = slo(doc, "list", "error_rate")
    # allowed = (1 - target) x N = 0.005 x 10,000 = 50; 10 consumed
    assert s["measured_pct"] == 0.1 and s["status"] == "pass"
    assert s["budget"] == {"allowed": 50.0, "consumed": 10, "remaining": 40.0, "remaining_pct": 80.0}
    b = doc["budget"]
    # availability 99.9 %: 0.001 x 12,500 requests = 12.5 failures allowed over the run
    assert b["requests"] == 12_500 and b["allowed_failures"] == 12.5 and b["consumed"] == 10
    assert b["remaining"] == 2.5 and b["burn_rate"] == 0.8 and b["monthly_budget_minutes"] == 43.2


def test_an_error_rate_above_target_breaches() -> None:
    rec = healthy()
    record(rec, "execute", 10, ms=4.0, status=502)  # 10 of 510 = 1.96 % > 1 %
    doc = document(rec)
    s = slo(doc, "execute", "error_rate")
    assert s["status"] == "fail" and s["budget"]["remaining"] < 0
    assert doc["verdict"]["exit_code"] == EXIT_SLO


def test_429s_are_not_errors_but_too_many_make_the_run_invalid() -> None:
    rec = healthy()
    record(rec, "execute", 100, ms=1.0, status=429)
    doc = document(rec)
    s = slo(doc, "execute", "error_rate")
    assert s["measured_pct"] == 0.0 and s["samples"] == 500  # 429s are not served requests
    assert doc["endpoints"]["execute"]["rate_limited"] == 100
    assert doc["endpoints"]["execute"]["latency_ms"]["uncorrected"]["count"] == 500
    c = check(doc, "rate_limited_share")
    assert not c["ok"] and "execute 100/600" in c["detail"]
    assert doc["verdict"]["exit_code"] == EXIT_INVALID


def test_a_missed_arrival_rate_blocks_a_pass_but_not_a_breach() -> None:
    doc = document(healthy(), achieved=93.0)
    c = check(doc, "achieved_rate")
    assert not c["ok"] and c["deviation_pct"] == -7.0 and c["blocks"] == "pass"
    assert doc["verdict"]["exit_code"] == EXIT_INVALID
    rec = healthy()
    record(rec, "execute", 60, ms=2000.0)
    assert document(rec, achieved=93.0)["verdict"]["exit_code"] == EXIT_SLO
    assert document(healthy(), achieved=96.0)["verdict"]["exit_code"] == EXIT_OK


@pytest.mark.parametrize(
    ("facts", "cpu", "check_name"),
    [
        (
            {"exceptions": [{"msg": "KeyError: 'x'", "count": 3, "nodes": ["local"], "traceback": ""}]},
            None,
            "generator_exceptions",
        ),
        ({"unhandled_errors": True}, None, "generator_exceptions"),
        ({"missing_workers": ["worker-1"]}, None, "worker_reports"),
        (None, [95.0] * 10, "generator_cpu"),
    ],
)
def test_generator_trouble_makes_even_a_breach_invalid(
    facts: dict[str, object] | None, cpu: list[float] | None, check_name: str
) -> None:
    rec = healthy()
    record(rec, "execute", 60, ms=2000.0)  # a breach...
    doc = document(rec, facts=facts, cpu=cpu or [20.0] * 10)
    assert not check(doc, check_name)["ok"]
    assert doc["verdict"]["exit_code"] == EXIT_INVALID  # ...that cannot be trusted


def test_requests_refused_as_unauthorised_are_not_evidence() -> None:
    rec = healthy()
    record(rec, "list", 5, ms=1.0, status=401)
    doc = document(rec)
    c = check(doc, "well_formed_requests")
    assert not c["ok"] and "5 x 401" in c["detail"] and "RELAY_API_KEY" in c["detail"]
    assert doc["verdict"]["exit_code"] == EXIT_INVALID


def test_no_requests_is_invalid_and_no_answers_is_unreachable() -> None:
    assert document(Recorder())["verdict"]["exit_code"] == EXIT_INVALID
    rec = Recorder()
    record(rec, "list", 30, ms=1.0, status=0)
    doc = document(rec)
    assert doc["verdict"]["exit_code"] == EXIT_INFRA and doc["verdict"]["outcome"] == "unreachable"


def test_recompute_from_the_file_gives_the_same_verdict() -> None:
    rec = healthy()
    record(rec, "execute", 60, ms=1249.0)
    doc = document(rec)
    stored = roundtrip(doc)
    again = report.recompute(stored)
    for key in ("slos", "budget", "validity", "verdict"):
        assert again[key] == stored[key]
