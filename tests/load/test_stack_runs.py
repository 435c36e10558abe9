"""``relay-gate load`` against real relay processes: coordinated omission, two workers, 429s.

Each test runs the CLI (and through it Locust) as a subprocess against a one-replica stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.errors import EXIT_INVALID, EXIT_OK, EXIT_SLO
from gate.stack.reference import Stack, StackConfig
from load.launch import LOCUSTFILE
from tests.windows import wait_for_window_room

pytestmark = pytest.mark.stack

# Generous thresholds and small minimums: these tests are about measurement and merging on a busy
# 2-core CI machine, not about the reference service's latency.
LENIENT = """
[endpoints.list]
error_rate_max_pct = 1
min_requests = 50
latency = [{ percentile = 99, max_ms = 1000, min_samples = 100 }]

[endpoints.preview]
error_rate_max_pct = 1
min_requests = 50
latency = [{ percentile = 99, max_ms = 1000, min_samples = 100 }]

[endpoints.execute]
error_rate_max_pct = 1
min_requests = 20
latency = [{ percentile = 95, max_ms = 1200, min_samples = 20 }]
"""


@pytest.fixture(scope="module")
def relay() -> Iterator[Stack]:
    """One relay replica (so pausing it stalls every request), limiter on but out of the way."""
    with Stack(StackConfig(replicas=1, rate_limit=1_000_000, window_s=60)) as s:
        yield s


def target_args(tmp_path: Path, stack: Stack) -> tuple[list[str], dict[str, str]]:
    cfg = tmp_path / "target.toml"
    cfg.write_text(
        '[credentials]\ndev = { env = "LT_DEV" }\n'
        'dev-a = { env = "LT_DEV_A", workspace = "ws-a" }\n'
        'dev-b = { env = "LT_DEV_B", workspace = "ws-b" }\n'
    )
    env = {
        "LT_DEV": stack.key("dev").key,
        "LT_DEV_A": stack.key("dev-ws-a").key,
        "LT_DEV_B": stack.key("dev-ws-b").key,
    }
    return ["--target-url", stack.base_url, "--target-config", str(cfg)], env


def spec(tmp_path: Path, text: str = LENIENT) -> str:
    path = tmp_path / "slos.toml"
    path.write_text(text)
    return str(path)


def gate_load(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gate.cli", "load", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def finish(proc: subprocess.Popen[str], results: Path) -> tuple[str, dict[str, Any]]:
    out, err = proc.communicate(timeout=120)
    path = results / "load" / "load.json"
    assert path.exists(), out + err
    return out + err, json.loads(path.read_text())


def test_a_2s_stall_shows_in_the_corrected_p99_where_locust_sees_none(tmp_path: Path, relay: Stack) -> None:
    # list only, p99 <= 250 ms: Locust's own figure passes that comfortably even on a loaded CI machine;
    # the point is 2 s of stall against milliseconds
    argv, env = target_args(tmp_path, relay)
    slos_toml = spec(
        tmp_path,
        "[endpoints.list]\nerror_rate_max_pct = 0.5\nlatency = [{ percentile = 99, max_ms = 250 }]\n",
    )
    results = tmp_path / "run"
    proc = gate_load(
        *argv, "--rate", "100", "--concurrency", "8", "--duration", "20s", "--weights", "list=1",
        "--slos", slos_toml, "--results", str(results), env=env,
    )  # fmt: skip
    progress = results / "load" / "logs" / "progress.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        lines = progress.read_text().splitlines() if progress.exists() else []
        if lines and json.loads(lines[-1])["elapsed_s"] >= 6:
            break
        time.sleep(0.2)
    relay.replicas[0].pause()  # SIGSTOP: the one relay process stops answering
    time.sleep(2.0)
    relay.replicas[0].resume()
    output, doc = finish(proc, results)

    assert proc.returncode == EXIT_SLO, output
    s = next(s for s in doc["slos"] if s["endpoint"] == "list" and s["kind"] == "latency")
    assert s["basis"] == "corrected" and s["samples"] >= 1000
    # the stall, as the open model measured it: ~200 requests were due during it
    assert s["measured_ms"] >= 1500 and s["status"] == "fail"
    # ... and as Locust (closed-loop, from the actual send) saw it: only the 8 requests in flight
    assert s["locust_ms"] is not None and s["locust_ms"] <= 250
    assert s["uncorrected_ms"] is not None and s["uncorrected_ms"] <= 250
    lat = doc["endpoints"]["list"]["latency_ms"]
    assert lat["corrected"]["max"] >= 1900 and lat["lag"]["p99"] >= 1000
    assert "measured" in output and "verdict: BREACH (exit 3)" in output


def test_two_workers_merge_into_one_verdict(tmp_path: Path, relay: Stack) -> None:
    argv, env = target_args(tmp_path, relay)
    results = tmp_path / "dist"
    proc = gate_load(
        *argv, "--rate", "60", "--concurrency", "8", "--duration", "8s", "--workers", "2",
        "--slos", spec(tmp_path), "--results", str(results), env=env,
    )  # fmt: skip
    output, doc = finish(proc, results)
    assert proc.returncode == EXIT_OK, output

    workers = [g for g in doc["generators"] if g["role"] == "worker"]
    assert len(workers) == 2 and doc["model"]["workers"] == 2
    assert all(w["final"] and w["requests"] > 100 and w["arrival_rate"] == 30.0 for w in workers)
    requests = sum(e["requests"] for e in doc["endpoints"].values())
    assert sum(w["requests"] for w in workers) == requests
    for e in doc["endpoints"].values():
        # every sample of both workers is in the merged histograms
        assert e["latency_ms"]["uncorrected"]["count"] == e["requests"] - e["rate_limited"]
        assert e["latency_ms"]["corrected"]["count"] == e["requests"] - e["rate_limited"] + e["unfinished"]
    checks = {c["check"]: c for c in doc["validity"]}
    assert checks["worker_reports"]["ok"] and checks["achieved_rate"]["ok"]
    assert {s["endpoint"] for s in doc["slos"]} == {"list", "preview", "execute"}
    # recomputed from the file alone, the verdict is the same
    recomputed = subprocess.run(
        [sys.executable, "-m", "gate.cli", "load", "--recompute", str(results / "load" / "load.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert recomputed.returncode == EXIT_OK, recomputed.stderr
    assert "verdict: PASS (exit 0)" in recomputed.stdout
    run = json.loads((results / "run.json").read_text())
    assert run["schema"] == "relay-gate/run@1" and run["exit_code"] == EXIT_OK and run["command"] == "load"
    for key in env.values():
        assert key not in (results / "load" / "load.json").read_text()


def test_429s_are_counted_apart_not_as_errors(tmp_path: Path) -> None:
    """Plain Locust with one key against a limit of 5 executes per window: the rest are 429s."""
    with Stack(StackConfig(replicas=1, rate_limit=5, window_s=3600)) as stack:
        results = tmp_path / "results"
        wait_for_window_room(3600, need_s=60)  # the 4 s run (plus Locust's start) in one window
        argv = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "--host", stack.base_url, "-u", "4", "-r", "4", "-t", "4s", "--arrival-rate", "30",
            "--slos", spec(tmp_path), "--results-dir", str(results),
        ]  # fmt: skip
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **os.environ,
                "RELAY_API_KEY": stack.key("dev").key,
                "RELAY_LOAD_WEIGHTS": "list=1,execute=1",
            },
        )
    doc = json.loads((results / "load" / "load.json").read_text())
    execute = doc["endpoints"]["execute"]
    assert execute["counts"]["ok"] == 5 and execute["rate_limited"] == execute["requests"] - 5
    assert execute["errors"] == 0 and execute["statuses"]["429"] == execute["rate_limited"]
    error_rate = next(s for s in doc["slos"] if s["endpoint"] == "execute" and s["kind"] == "error_rate")
    assert error_rate["measured_pct"] == 0.0
    # the run measured the limiter, not the service: not valid evidence
    share = next(c for c in doc["validity"] if c["check"] == "rate_limited_share")
    assert not share["ok"] and "execute" in share["detail"]
    assert proc.returncode == EXIT_INVALID, proc.stderr[-3000:]
