"""Plain Locust runs of load/locustfile.py (always a subprocess: Locust monkey-patches with gevent)
against small loopback targets: exit codes for zero requests, an unreachable host, and crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gate.errors import EXIT_INFRA, EXIT_INVALID, EXIT_OK
from gate.stack.procs import free_port
from load import launch
from load.launch import LOCUSTFILE
from tests.load import fakeserver

LENIENT = """
[endpoints.list]
error_rate_max_pct = 1
min_requests = 10
latency = [{ percentile = 95, max_ms = 2000, min_samples = 10 }]
"""


def locust(
    tmp_path: Path, host: str, *extra: str, locustfile: Path = LOCUSTFILE, seconds: int = 3
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    spec = tmp_path / "slos.toml"
    spec.write_text(LENIENT)
    results = tmp_path / "results"
    argv = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
        "--host", host, "-u", "4", "-r", "4", "-t", f"{seconds}s", "--stop-timeout", "0",
        "--arrival-rate", "40", "--slos", str(spec), "--results-dir", str(results), *extra,
    ]  # fmt: skip
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RELAY_API_KEY": "load-test-key-0123456789", "RELAY_LOAD_WEIGHTS": "list=1"},
    )
    path = results / "load" / "load.json"
    return proc, json.loads(path.read_text()) if path.exists() else None


def test_plain_locust_writes_results_and_exits_with_the_verdict(tmp_path: Path) -> None:
    with fakeserver.answering() as url:
        proc, doc = locust(tmp_path, url)
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    assert doc is not None and doc["schema"] == "relay-gate/load@1"
    assert "SLO verdict: open model, 40 req/s requested" in proc.stderr
    assert (tmp_path / "results" / "run.json").is_file()  # plain Locust makes a complete results folder
    assert doc["endpoints"]["list"]["requests"] > 60
    assert "load-test-key-0123456789" not in json.dumps(doc)


def test_every_response_lands_and_a_body_that_is_not_the_endpoints_json_is_a_bad_response(
    tmp_path: Path,
) -> None:
    # the check parses the body's bytes: not JSON, invalid UTF-8, no body, or JSON without the field
    bad = [b"<html>", b'{"actions": "\xff\xfe"}', b"", b'{"preview_id": "p"}']
    with fakeserver.answering([fakeserver.BODY, *bad]) as url:
        proc, doc = locust(tmp_path, url)
    assert doc is not None, proc.stderr[-3000:]
    ep = doc["endpoints"]["list"]
    counts = ep["counts"]
    assert ep["requests"] == counts["ok"] + counts["bad_response"] > 60
    assert counts["ok"] > 0 and counts["bad_response"] > 2 * counts["ok"]  # 4 of every 5 bodies are wrong
    # every response Locust counted is in the histograms (batched on the request path, none lost);
    # Locust may also count one still in flight at the stop, which the histograms hold as unfinished
    assert ep["requests"] <= ep["latency_ms"]["locust"]["count"] <= ep["requests"] + ep["unfinished"]
    assert ep["latency_ms"]["corrected"]["count"] == ep["requests"] + ep["unfinished"]
    assert ep["latency_ms"]["uncorrected"]["count"] == ep["requests"]
    assert ep["latency_ms"]["lag"]["count"] == ep["requests"]


def test_zero_requests_is_not_valid_evidence(tmp_path: Path) -> None:
    with fakeserver.black_hole() as url:
        proc, doc = locust(tmp_path, url)
    assert proc.returncode == EXIT_INVALID, proc.stderr[-3000:]
    assert doc is not None
    checks = {c["check"]: c for c in doc["validity"]}
    assert not checks["requests_completed"]["ok"]
    # every request was still waiting when the run stopped: charged its wait as a lower bound
    assert doc["endpoints"]["list"]["unfinished"] >= 1


def test_an_unreachable_host_is_exit_5(tmp_path: Path) -> None:
    proc, doc = locust(tmp_path, f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == EXIT_INFRA, proc.stderr[-3000:]
    assert doc is not None and doc["verdict"]["outcome"] == "unreachable"


BROKEN = """
from locust import events, task

from load.locustfile import ActionsApiClient


class Broken(ActionsApiClient):
    @task
    def list_then_fail(self):
        self.list_actions()
        {failure}
"""


def test_an_exception_in_a_task_is_never_a_pass(tmp_path: Path) -> None:
    broken = tmp_path / "broken_locustfile.py"
    broken.write_text(BROKEN.format(failure="raise RuntimeError('journey bug')"))
    with fakeserver.answering() as url:
        proc, doc = locust(tmp_path, url, "Broken", locustfile=broken)
    assert proc.returncode == EXIT_INVALID, proc.stderr[-3000:]
    assert doc is not None
    check = next(c for c in doc["validity"] if c["check"] == "generator_exceptions")
    assert not check["ok"] and "journey bug" in check["detail"]


def test_a_failing_event_handler_is_never_a_pass(tmp_path: Path) -> None:
    broken = tmp_path / "broken_locustfile.py"
    broken.write_text(
        BROKEN.format(failure="pass")
        + "\n\n@events.test_stop.add_listener\ndef _teardown(**kw):\n    raise RuntimeError('teardown bug')\n"
    )
    with fakeserver.answering() as url:
        proc, doc = locust(tmp_path, url, "Broken", locustfile=broken)
    assert proc.returncode == EXIT_INVALID, proc.stderr[-3000:]
    assert doc is not None and doc["facts"]["unhandled_errors"] is True


def test_a_bad_spec_stops_plain_locust_with_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("[endpoints.list]\nerror_rate_max_pct = -1\n")
    proc, doc = locust(tmp_path, "http://127.0.0.1:9", "--slos", str(spec))
    assert proc.returncode == 2 and doc is None
    assert "endpoints.list.error_rate_max_pct" in proc.stderr


def test_bad_weights_stop_plain_locust_with_exit_2() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-t",
            "1s",
            "--host",
            "http://x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RELAY_API_KEY": "load-test-key-0123456789", "RELAY_LOAD_WEIGHTS": "browse=1"},
    )
    assert proc.returncode == 2
    assert "RELAY_LOAD_WEIGHTS: 'browse=1' is not NAME=WEIGHT" in proc.stderr


LEAKY = """
from locust import task

from load.locustfile import ActionsApiClient


class Leaky(ActionsApiClient):
    @task
    def list_then_fail(self):
        self.list_actions()
        raise RuntimeError(
            f"journey bug with {self.auth['Authorization']}, short token s7!, cache redis://:pw99@cache:6379"
        )


del ActionsApiClient  # Leaky is the only user class here
"""


def test_locust_logs_are_written_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A traceback quoting the key, a short secret and a URL password reaches the log redacted."""
    leaky = tmp_path / "leaky_locustfile.py"
    leaky.write_text(LEAKY)
    monkeypatch.setattr(launch, "LOCUSTFILE", leaky)
    spec = tmp_path / "slos.toml"
    spec.write_text(LENIENT)
    key = "load-test-key-0123456789"
    with fakeserver.answering() as url:
        run = launch.LocustRun(
            launch.LocustPlan(
                host=url, users=2, duration_s=2, arrival_rate=10, think_time="0", workers=0, slos=spec,
                results=tmp_path / "results", run_id="leak-test", target_name="fake",
                env={"RELAY_API_KEYS": key, "RELAY_API_KEY": "", "RELAY_LOAD_WEIGHTS": "list=1"},
                secrets=["s7!"],
            )
        )  # fmt: skip
        run.start()
        assert run.master is not None
        run.master.popen.wait(timeout=60)
        run.wait_all(timeout=10)
    log = (tmp_path / "results" / "load" / "logs" / "locust.log").read_text()
    assert "journey bug with Bearer [REDACTED], short token [REDACTED], cache redis://:[REDACTED]@" in log, (
        log[-3000:]
    )
    leaked = {s: log.count(s) for s in (key, "s7!", "pw99") if s in log}
    assert not leaked, f"secrets in the Locust log: {leaked}"
