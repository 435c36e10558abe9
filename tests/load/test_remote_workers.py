"""Workers on other hosts: ``relay-gate load --master`` with workers that connect to it from their own
loopback addresses (127.0.0.2, 127.0.0.3), against the reference stack; and, against a tiny loopback
target with plain Locust, the workers a master must not count (another spec, never joined, late).

Every process is a subprocess (Locust monkey-patches with gevent) watched by PID: none may be left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from gate.errors import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from gate.stack.procs import free_port
from gate.stack.reference import Stack, StackConfig
from load.launch import LOCUSTFILE
from tests.load import fakeserver
from tests.processes import ProcessWatcher

LENIENT = """
[endpoints.list]
error_rate_max_pct = 1
min_requests = 20
latency = [{ percentile = 95, max_ms = 2000, min_samples = 20 }]

[endpoints.preview]
error_rate_max_pct = 1
min_requests = 20
latency = [{ percentile = 95, max_ms = 2000, min_samples = 20 }]

[endpoints.execute]
error_rate_max_pct = 1
min_requests = 5
latency = [{ percentile = 95, max_ms = 2000, min_samples = 5 }]
"""
KEY = "load-test-key-0123456789"


class Procs:
    """Processes a test started, each watched with its descendants; all gone when the test ends."""

    def __init__(self) -> None:
        self.started: list[tuple[subprocess.Popen[str], ProcessWatcher]] = []

    def start(self, argv: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
        with open(log, "w") as f:
            proc = subprocess.Popen(
                argv, stdout=f, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env},
                start_new_session=True,
            )  # fmt: skip
        self.started.append((proc, ProcessWatcher(proc.pid).start()))
        return proc

    def close(self) -> list[str]:
        left = []
        for proc, watcher in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            watcher.stop()
            left += watcher.wait_gone()
        return left


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    yield p
    assert not p.close(), "processes left behind"


def wait(proc: subprocess.Popen[str], log: Path, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{proc.args} did not finish:\n{log.read_text()[-3000:]}")


def load_json(results: Path) -> dict[str, Any]:
    path = results / "load" / "load.json"
    assert path.exists(), f"no {path}"
    return dict(json.loads(path.read_text()))


def reasons(doc: dict[str, Any]) -> str:
    return "\n".join(doc["verdict"]["reasons"])


# -- relay-gate load --master / --worker against the reference stack --------------------------------
@pytest.fixture(scope="module")
def relay() -> Iterator[Stack]:
    with Stack(StackConfig(replicas=1, rate_limit=1_000_000, window_s=60)) as s:
        yield s


def gate_master(procs: Procs, tmp_path: Path, stack: Stack, port: int, *extra: str) -> tuple[Any, Path, Path]:
    cfg = tmp_path / "target.toml"
    cfg.write_text('[credentials]\ndev = { env = "LT_DEV" }\n')
    spec = tmp_path / "slos.toml"
    spec.write_text(LENIENT)
    results, log = tmp_path / "results", tmp_path / "master.out"
    proc = procs.start(
        [
            sys.executable, "-m", "gate.cli", "load", "--master", "--expect-workers", "2",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--join-timeout", "60",
            "--target-url", stack.base_url, "--target-config", str(cfg), "--rate", "30",
            "--concurrency", "4", "--slos", str(spec), "--results", str(results), *extra,
        ],
        env={"LT_DEV": stack.key("dev").key},
        log=log,
    )  # fmt: skip
    return proc, results, log


def gate_worker(
    procs: Procs, tmp_path: Path, stack: Stack, port: int, source: str, *, via_config: bool = False
) -> Any:
    """A ``relay-gate load --worker``; its key from ``RELAY_API_KEY``, or with ``via_config`` from the
    master's own target config (its [credentials] variable set, RELAY_API_KEY(S) empty)."""
    log = tmp_path / f"worker-{source}.out"
    key = stack.key("dev").key
    where = (
        ["--target-url", stack.base_url, "--target-config", str(tmp_path / "target.toml")]
        if via_config
        else []
    )
    return procs.start(
        [
            sys.executable, "-m", "gate.cli", "load", "--worker", "--master-host", "127.0.0.1",
            "--master-port", str(port), "--source-address", source, "--slos", str(tmp_path / "slos.toml"),
            *where,
        ],
        env={"RELAY_API_KEY": "", "RELAY_API_KEYS": "", "LT_DEV": key} if via_config
        else {"RELAY_API_KEY": key, "RELAY_API_KEYS": ""},
        log=log,
    )  # fmt: skip


def locust_of(proc: subprocess.Popen[str]) -> psutil.Process | None:
    """The Locust worker process a ``relay-gate load --worker`` started."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(proc.pid).children(recursive=True):
            if "locust" in " ".join(child.cmdline()):
                return child
    return None


def sources_towards(process: psutil.Process | None, port: int) -> set[str]:
    """The local addresses of ``process``'s connections to ``port`` (the relay's)."""
    if process is None:
        return set()
    with contextlib.suppress(psutil.NoSuchProcess):
        return {c.laddr.ip for c in process.net_connections("tcp") if c.raddr and c.raddr.port == port}
    return set()


@pytest.mark.stack
def test_workers_on_two_addresses_merge_exactly_into_the_masters_verdict(
    tmp_path: Path, relay: Stack, procs: Procs
) -> None:
    port = free_port()
    relay_port = int(relay.base_url.rsplit(":", 1)[1].rstrip("/"))
    master, results, log = gate_master(procs, tmp_path, relay, port, "--duration", "6s")
    # one worker holds its key by variable, the other by the master's target config
    workers = {
        src: gate_worker(procs, tmp_path, relay, port, src, via_config=src == "127.0.0.3")
        for src in ("127.0.0.2", "127.0.0.3")
    }
    seen: dict[str, set[str]] = {src: set() for src in workers}
    while master.poll() is None:  # each worker's requests leave from its own address
        for src, w in workers.items():
            seen[src] |= sources_towards(locust_of(w), relay_port)
        time.sleep(0.2)
    assert wait(master, log) == EXIT_OK, log.read_text()[-4000:]
    assert all(wait(w, tmp_path / f"worker-{src}.out") == 0 for src, w in workers.items())
    assert seen == {"127.0.0.2": {"127.0.0.2"}, "127.0.0.3": {"127.0.0.3"}}

    doc = load_json(results)
    gens = [g for g in doc["generators"] if g["role"] == "worker"]
    assert len(gens) == 2 and doc["model"]["workers"] == 2
    assert all(g["final"] and g["requests"] > 0 and g["arrival_rate"] == 15.0 for g in gens)
    names = doc["facts"]["workers"]["names"]
    assert sorted(names[g["id"]].rsplit("from ", 1)[1].rstrip(")") for g in gens) == [
        "127.0.0.2",
        "127.0.0.3",
    ]
    # the merge is exact: every sample of both workers, no more
    assert sum(g["requests"] for g in gens) == sum(e["requests"] for e in doc["endpoints"].values())
    for e in doc["endpoints"].values():
        assert e["latency_ms"]["uncorrected"]["count"] == e["requests"] - e["rate_limited"]
    checks = {c["check"]: c for c in doc["validity"]}
    assert checks["workers"]["ok"] and checks["worker_reports"]["ok"]


@pytest.mark.stack
def test_a_worker_killed_mid_run_makes_it_invalid_naming_the_worker(
    tmp_path: Path, relay: Stack, procs: Procs
) -> None:
    port = free_port()
    master, results, log = gate_master(procs, tmp_path, relay, port, "--duration", "8s")
    survivor = gate_worker(procs, tmp_path, relay, port, "127.0.0.2")
    victim = gate_worker(procs, tmp_path, relay, port, "127.0.0.3")
    progress = results / "load" / "logs" / "progress.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and master.poll() is None:
        lines = progress.read_text().splitlines() if progress.exists() else []
        if lines and json.loads(lines[-1])["elapsed_s"] >= 4:  # it has reported at least once
            break
        time.sleep(0.2)
    killed = locust_of(victim)
    assert killed is not None
    killed.kill()  # SIGKILL: no last report, no goodbye
    assert wait(master, log) == EXIT_INVALID, log.read_text()[-4000:]
    assert wait(survivor, tmp_path / "worker-127.0.0.2.out") == 0

    doc = load_json(results)
    names = doc["facts"]["workers"]["names"]
    node = next(n for n, name in names.items() if f"pid {killed.pid}," in name)
    assert doc["facts"]["missing_workers"] == [node]
    assert f"worker_reports: no final measurements from {node} (pid {killed.pid}, from 127.0.0.3)" in reasons(
        doc
    )
    assert "verdict: INVALID (exit 4)" in log.read_text()


# -- plain Locust masters and workers: the workers a master must not count --------------------------
def locust_master(
    procs: Procs, tmp_path: Path, url: str, port: int, *, expect: int, join: int, t: int
) -> Any:
    spec = tmp_path / "slos.toml"
    spec.write_text(LENIENT.split("[endpoints.preview]")[0])
    log = tmp_path / "master.out"
    proc = procs.start(
        [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
            "--host", url, "-u", "4", "-r", "4", "-t", f"{t}s", "--stop-timeout", "0",
            "--arrival-rate", "40", "--slos", str(spec), "--results-dir", str(tmp_path / "results"),
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            "--expect-workers", str(expect), "--join-timeout", str(join),
        ],
        env={"RELAY_API_KEY": KEY, "RELAY_LOAD_WEIGHTS": "list=1"},
        log=log,
    )  # fmt: skip
    return proc, log


def locust_worker(procs: Procs, tmp_path: Path, port: int, name: str, spec: Path) -> Any:
    log = tmp_path / f"{name}.out"
    proc = procs.start(
        [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", "127.0.0.1",
            "--master-port", str(port), "--slos", str(spec),
        ],
        env={"RELAY_API_KEY": KEY, "RELAY_LOAD_WEIGHTS": "list=1"},
        log=log,
    )  # fmt: skip
    return proc, log


def test_a_worker_with_another_spec_is_refused_and_one_that_never_joins_is_counted(
    tmp_path: Path, procs: Procs
) -> None:
    port = free_port()
    other = tmp_path / "other.toml"
    other.write_text(LENIENT.split("[endpoints.preview]")[0].replace("2000", "1999"))
    with fakeserver.answering() as url:
        master, log = locust_master(procs, tmp_path, url, port, expect=3, join=6, t=3)
        good, good_log = locust_worker(procs, tmp_path, port, "good", tmp_path / "slos.toml")
        bad, bad_log = locust_worker(procs, tmp_path, port, "bad", other)
        assert wait(bad, bad_log) == EXIT_USAGE, bad_log.read_text()[-3000:]
        assert wait(master, log) == EXIT_INVALID, log.read_text()[-3000:]
        assert wait(good, good_log) == 0, good_log.read_text()[-3000:]
    assert "the master refused this worker: its SLO spec differs" in bad_log.read_text()
    doc = load_json(tmp_path / "results")
    workers = doc["facts"]["workers"]
    (refused,) = workers["refused"]
    assert workers["names"][refused].endswith(f"(pid {bad.pid})")
    assert f"worker {refused} (pid {bad.pid}) was refused: its SLO spec differs" in reasons(doc)
    assert "1 of 3 expected workers never joined within the 6 s join timeout" in reasons(doc)
    # the refused worker's measurements are not in the merge: the one good worker ran the test alone
    gens = [g for g in doc["generators"] if g["role"] == "worker"]
    assert [g["id"] for g in gens] == workers["joined"] and gens[0]["arrival_rate"] == 40.0
    assert gens[0]["requests"] == doc["endpoints"]["list"]["requests"]


def test_no_worker_joining_ends_the_run_at_the_join_timeout_as_invalid(tmp_path: Path, procs: Procs) -> None:
    master, log = locust_master(procs, tmp_path, "http://127.0.0.1:9", free_port(), expect=2, join=2, t=60)
    assert wait(master, log, timeout=60) == EXIT_INVALID, log.read_text()[-3000:]
    doc = load_json(tmp_path / "results")
    assert "workers: 2 of 2 expected workers never joined within the 2 s join timeout (joined: none)" in (
        reasons(doc)
    )


def test_a_worker_joining_after_the_start_is_named(tmp_path: Path, procs: Procs) -> None:
    port = free_port()
    with fakeserver.answering() as url:
        master, log = locust_master(procs, tmp_path, url, port, expect=1, join=30, t=6)
        locust_worker(procs, tmp_path, port, "first", tmp_path / "slos.toml")
        progress_seen = time.monotonic() + 60
        while "Sending spawn jobs" not in log.read_text() and time.monotonic() < progress_seen:
            time.sleep(0.1)
        late, _ = locust_worker(procs, tmp_path, port, "late", tmp_path / "slos.toml")
        assert wait(master, log) == EXIT_INVALID, log.read_text()[-3000:]
    doc = load_json(tmp_path / "results")
    (node,) = doc["facts"]["workers"]["late"]
    assert f"worker {node} (pid {late.pid}) joined after the test had started" in reasons(doc)


PLAIN = """
from locust import FastHttpUser, task


class Plain(FastHttpUser):
    @task
    def index(self):
        self.client.get("/actions")
"""


def test_a_worker_that_does_not_introduce_itself_is_refused(tmp_path: Path, procs: Procs) -> None:
    """A worker running some other locustfile (no relay-gate plugin) never says what it runs."""
    port = free_port()
    plain = tmp_path / "plain_locustfile.py"
    plain.write_text(PLAIN)
    with fakeserver.answering() as url:
        master, log = locust_master(procs, tmp_path, url, port, expect=1, join=2, t=30)
        worker = procs.start(
            [sys.executable, "-m", "locust", "-f", str(plain), "--worker", "--master-port", str(port)],
            env={},
            log=tmp_path / "plain.out",
        )
        assert wait(master, log, timeout=60) == EXIT_INVALID, log.read_text()[-3000:]
        wait(worker, tmp_path / "plain.out")  # told to quit
    doc = load_json(tmp_path / "results")
    (node,) = doc["facts"]["workers"]["refused"]
    assert f"worker {node} was refused: it did not introduce itself within 5 s of connecting" in reasons(doc)
