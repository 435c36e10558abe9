"""load/launch.py: Locust processes are signalled only while unreaped, and a master whose port was taken
before it bound gets another (its workers connect to it, never to whoever took the first)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from gate.errors import StackError
from gate.process_groups import exit_status, wait_exit
from gate.stack import ports
from load.launch import LocustPlan, LocustRun, _Proc
from tests.load import fakeserver

LENIENT = """
[endpoints.list]
error_rate_max_pct = 1
min_requests = 1
latency = [{ percentile = 95, max_ms = 2000, min_samples = 1 }]
"""


def plan(tmp_path: Path, host: str, *, workers: int) -> LocustPlan:
    spec = tmp_path / "slos.toml"
    spec.write_text(LENIENT)
    return LocustPlan(
        host=host,
        users=2,
        duration_s=2,
        arrival_rate=10,
        think_time="0",
        workers=workers,
        slos=spec,
        results=tmp_path / "results",
        run_id="launch-test",
        target_name="fake",
        env={"RELAY_API_KEY": "load-test-key-0123456789", "RELAY_LOAD_WEIGHTS": "list=1"},
    )


def spawn(tmp_path: Path, name: str, script: str, *args: str) -> _Proc:
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as f:
        popen = subprocess.Popen(["sh", "-c", script, "sh", *args], stdout=f, start_new_session=True)
    return _Proc(name, popen, log)


def test_stop_and_wait_all_never_signal_a_reaped_leader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = LocustRun(plan(tmp_path, "http://127.0.0.1:9", workers=1))
    fork_pid = tmp_path / "fork.pid"
    # the master ends at once, leaving a fork in its group; the worker runs until told to stop
    run.master = spawn(tmp_path, "master", 'sleep 300 & echo $! > "$1"', str(fork_pid))
    run.workers = [spawn(tmp_path, "worker-0", "exec sleep 300")]
    leaders = {p.popen.pid: p.popen for p in (run.master, *run.workers)}
    calls: list[tuple[int, int, bool]] = []
    real = os.killpg

    def recording(pgid: int, sig: int) -> None:
        calls.append((pgid, sig, leaders[pgid].returncode is not None))
        real(pgid, sig)

    monkeypatch.setattr(os, "killpg", recording)
    assert wait_exit(run.master.popen, 30) and not run.running()
    assert run.exit_codes() == {"master": 0, "worker-0": None}
    assert run.master.popen.returncode is None, "reading the exit codes reaped the master"
    fork = int(fork_pid.read_text())
    run.stop(timeout=10)
    run.stop(timeout=10)
    run.wait_all(timeout=1)
    assert run.exit_codes() == {"master": 0, "worker-0": -signal.SIGTERM}
    assert not [c for c in calls if c[2]], f"os.killpg on a reaped leader's group: {calls}"
    assert (
        run.master.popen.pid,
        signal.SIGKILL,
        False,
    ) in calls  # the fork's end, while the master was a zombie
    assert gone(fork), "a fork the master left in its group survived"


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether ``pid`` exits within ``timeout`` (a zombie awaiting whoever adopted it counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.01)
    return False


def test_a_master_whose_port_was_taken_gets_another_and_its_workers_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter, fakeserver.answering() as url:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real, picks = ports.free_port, iter([taken])
        monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": next(picks, None) or real(host))
        run = LocustRun(plan(tmp_path, url, workers=1))
        try:
            run.start()
            assert run.master_port is not None and run.master_port != taken
            assert [" ".join(w.popen.args) for w in run.workers] == [
                " ".join(map(str, run.worker_argv(run.master_port)))
            ]
            run.wait_all(timeout=120)
        finally:
            run.stop(timeout=10)
    codes = run.exit_codes()
    assert codes["worker-0"] == 0 and codes["master"] is not None, codes
    doc = json.loads((tmp_path / "results" / "load" / "load.json").read_text())
    assert [g for g in doc["generators"] if g["role"] == "worker"], "the worker never joined the master"


def test_a_master_that_can_never_bind_is_a_stack_error_naming_the_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(ports, "free_port", lambda host="127.0.0.1": taken)
        run = LocustRun(plan(tmp_path, "http://127.0.0.1:9", workers=1))
        with pytest.raises(StackError) as info:
            run.start()
    assert info.value.component == "locust master" and f"{taken}, {taken}, {taken}" in info.value.problem
    assert run.workers == [] and run.master is None


def test_a_master_that_ends_for_another_reason_is_left_to_the_verdict(tmp_path: Path) -> None:
    bad = plan(tmp_path, "http://127.0.0.1:9", workers=1)
    bad.env["RELAY_LOAD_WEIGHTS"] = "no-such-journey=1"  # the locustfile exits 2 before Locust binds
    run = LocustRun(bad)
    run.start()
    try:
        assert run.workers == [], "workers were started for a master that never listened"
        assert run.master is not None and exit_status(run.master.popen) == 2
    finally:
        run.stop(timeout=10)


def test_a_ctrl_c_while_the_workers_start_leaves_each_started_one_to_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C lands as worker-1 is started: worker-0 and worker-1 exist and must be on the run, where
    # stop() finds them, when the interrupt is raised (not in a list that was never assigned)
    run = LocustRun(plan(tmp_path, "http://127.0.0.1:9", workers=3))

    def fake_master(port: int) -> tuple[_Proc, int]:
        return spawn(tmp_path, "master", "exec sleep 300"), port

    def fake_spawn(name: str, argv: list[str]) -> _Proc:
        proc = spawn(tmp_path, name, "exec sleep 300")
        if name == "worker-1":
            os.kill(os.getpid(), signal.SIGINT)  # Python's handler raises at the next bytecode it can
        return proc

    monkeypatch.setattr(run, "_start_master", fake_master)
    monkeypatch.setattr(run, "_spawn", fake_spawn)
    monkeypatch.setattr("load.launch.on_free_port", lambda what, start: start(1))
    try:
        with pytest.raises(KeyboardInterrupt):
            run.start()
        assert [p.name for p in run.workers] == ["worker-0", "worker-1"]
    finally:
        run.stop(timeout=10)
    assert all(p.popen.returncode is not None for p in (run.master, *run.workers))  # type: ignore[union-attr]
