"""``relay-gate load --baseline`` end to end: two short runs against one relay replica, the second
stalled for 1.5 s, so that its list p99 regresses far beyond any noise of a shared machine while its
SLO (5 s) still holds: the regression alone makes it exit 3, and the evidence pack says so."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidence.render import render
from gate.errors import EXIT_OK, EXIT_SLO
from gate.stack.reference import Stack, StackConfig
from tests.load.test_stack_runs import finish, gate_load, target_args

pytestmark = pytest.mark.stack

# list only, small minimums: 50 req/s for 6 s is ~300 samples, p99 the 297th
SPEC = """
[endpoints.list]
error_rate_max_pct = 1
min_requests = 50
latency = [{ percentile = 99, max_ms = 5000, min_samples = 100 }]

[regression]
min_samples = 100
"""


@pytest.fixture(scope="module")
def relay() -> Iterator[Stack]:
    with Stack(StackConfig(replicas=1, rate_limit=1_000_000, window_s=60)) as s:
        yield s


def test_a_stalled_rerun_regresses_against_its_baseline_and_exits_3(tmp_path: Path, relay: Stack) -> None:
    argv, env = target_args(tmp_path, relay)
    spec = tmp_path / "slos.toml"
    spec.write_text(SPEC)
    load = [*argv, "--rate", "50", "--concurrency", "8", "--duration", "6s", "--weights", "list=1"]
    load += ["--slos", str(spec)]

    first = tmp_path / "first"
    proc = gate_load(*load, "--results", str(first), env=env)
    output, base = finish(proc, first)
    assert proc.returncode == EXIT_OK, output
    assert "comparison" not in base

    second = tmp_path / "second"
    proc = gate_load(*load, "--results", str(second), "--baseline", str(first), env=env)
    progress = second / "load" / "logs" / "progress.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        lines = progress.read_text().splitlines() if progress.exists() else []
        if lines and json.loads(lines[-1])["elapsed_s"] >= 2:
            break
        time.sleep(0.2)
    relay.replicas[0].pause()  # ~75 requests fall due while nothing answers
    time.sleep(1.5)
    relay.replicas[0].resume()
    output, doc = finish(proc, second)

    assert proc.returncode == EXIT_SLO, output
    c = doc["comparison"]
    assert c["baseline"]["run_id"] == base["run_id"]
    assert c["baseline"]["path"] == str(first / "load" / "load.json")
    lst = c["endpoints"]["list"]
    assert lst["status"] == "regression" and lst["outcome"] == "breach", lst
    assert lst["percentiles"]["p99"]["current_ms"] >= 1000 and lst["percentiles"]["p99"]["interval_ms"][0] > 0
    # the SLO verdict held; the regression decided the step
    assert doc["verdict"]["slos"]["exit_code"] == EXIT_OK
    assert doc["verdict"]["exit_code"] == EXIT_SLO and doc["verdict"]["outcome"] == "breach"
    assert "REGRESSION [BREACH]" in output and "against the baseline: list p99" in output
    # the SLO verdict is printed as such; the last verdict line printed is the step's
    slo_line = output.index("SLO verdict, before the baseline comparison: PASS (exit 0)")
    assert output.rindex("verdict: BREACH (exit 3)") > slo_line
    run_json = json.loads((second / "run.json").read_text())
    assert run_json["exit_code"] == EXIT_SLO

    pack = render(second, tmp_path / "pack")
    assert pack.code == EXIT_SLO
    metrics = (pack.out / "METRICS-SUMMARY.md").read_text()
    target = doc["target"]["name"]
    assert f"| baseline | `{base['run_id']}` | {base['started_at']} | {target} |" in metrics
    assert f"| this run | `{doc['run_id']}` | {doc['started_at']} | {target} |" in metrics
    assert "| REGRESSION |" in metrics and "**BREACH**" in metrics
