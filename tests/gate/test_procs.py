"""gate/stack/procs.py: a process group is signalled only while its leader is unreaped, and ends whole.

After a leader is reaped its PID, which is its group's id, can be handed to an unrelated process group:
``os.killpg`` on it then hits a stranger. These tests spy on ``os.killpg`` and fail on any call made
once the leader's ``Popen.returncode`` is set (that is, once it was reaped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gate.errors import PortTaken, StackError
from gate.interrupts import stop_child
from gate.process_groups import end_child, end_group, exit_status, reap_group, signal_group, wait_exit
from gate.stack.procs import ManagedProcess, wait_until


@dataclass
class KillpgSpy:
    """Every os.killpg call, and whether the leader of that group had been reaped at the time."""

    leaders: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    calls: list[tuple[int, int, bool]] = field(default_factory=list)

    def track(self, proc: subprocess.Popen[bytes] | None) -> subprocess.Popen[bytes]:
        assert proc is not None
        self.leaders[proc.pid] = proc
        return proc

    def after_reaping(self) -> list[tuple[int, int]]:
        return [(pgid, sig) for pgid, sig, reaped in self.calls if reaped]

    def signals_to(self, proc: subprocess.Popen[bytes]) -> list[int]:
        return [sig for pgid, sig, _ in self.calls if pgid == proc.pid]


@pytest.fixture
def killpg(monkeypatch: pytest.MonkeyPatch) -> Iterator[KillpgSpy]:
    spy = KillpgSpy()
    real = os.killpg

    def recording(pgid: int, sig: int) -> None:
        leader = spy.leaders.get(pgid)
        spy.calls.append((pgid, sig, leader is not None and leader.returncode is not None))
        real(pgid, sig)

    monkeypatch.setattr(os, "killpg", recording)
    yield spy
    assert not spy.after_reaping(), f"os.killpg on a reaped leader's group: {spy.after_reaping()}"


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for whoever adopted it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_pid(path: Path, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.01)
    return int(path.read_text())


def sh(tmp_path: Path, script: str, *args: str) -> ManagedProcess:
    return ManagedProcess("sh", ["sh", "-c", script, "sh", *args], log_path=tmp_path / "sh.log")


def test_an_exited_leader_is_read_without_being_reaped(tmp_path: Path) -> None:
    proc = sh(tmp_path, "exit 7").start()
    assert proc.proc is not None and wait_exit(proc.proc, 30)
    assert exit_status(proc.proc) == 7 and proc.returncode == 7 and not proc.alive()
    assert proc.proc.returncode is None, "reading the status reaped the leader"
    assert Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    assert reap_group(proc.proc) == 7 and proc.proc.returncode == 7


def test_a_signal_death_reads_as_minus_the_signal(tmp_path: Path, killpg: KillpgSpy) -> None:
    proc = killpg.track(sh(tmp_path, "exec sleep 300").start().proc)
    assert signal_group(proc, signal.SIGKILL)
    assert wait_exit(proc, 30) and exit_status(proc) == -signal.SIGKILL
    assert end_group(proc) == -signal.SIGKILL
    assert not signal_group(proc, signal.SIGTERM), "signalled the group of a reaped leader"


def test_a_reaped_leader_is_never_signalled_again(tmp_path: Path, killpg: KillpgSpy) -> None:
    proc = sh(tmp_path, "exit 0").start()
    popen = killpg.track(proc.proc)
    assert wait_exit(popen, 30)
    proc.stop()
    assert popen.returncode == 0
    for action in (proc.stop, proc.kill, proc.pause, proc.resume, lambda: proc.send_signal(signal.SIGTERM)):
        action()
    assert end_group(popen) == 0 and reap_group(popen) == 0
    assert not signal_group(popen, signal.SIGKILL)
    # the one SIGKILL sent was for forks left in the group, while the leader was still a zombie
    assert killpg.signals_to(popen) == [signal.SIGKILL]


def test_stop_of_a_live_process_signals_then_reaps(tmp_path: Path, killpg: KillpgSpy) -> None:
    proc = sh(tmp_path, "exec sleep 300").start()
    popen = killpg.track(proc.proc)
    proc.pause()
    proc.stop(timeout=10)  # wakes it (SIGCONT) so it can hear the SIGTERM
    assert popen.returncode == -signal.SIGTERM
    assert killpg.signals_to(popen)[:3] == [signal.SIGSTOP, signal.SIGCONT, signal.SIGTERM]
    proc.stop()
    proc.kill()


def test_a_leader_reaped_behind_our_back_is_not_signalled(tmp_path: Path, killpg: KillpgSpy) -> None:
    popen = killpg.track(sh(tmp_path, "exit 3").start().proc)
    os.waitpid(popen.pid, 0)  # someone else's waitpid: the PID is free for reuse from here on
    assert not signal_group(popen, signal.SIGTERM)
    assert popen.returncode is not None and end_group(popen) is not None
    assert killpg.signals_to(popen) == []


def test_forks_left_in_the_group_by_an_exited_leader_are_killed(tmp_path: Path, killpg: KillpgSpy) -> None:
    proc = sh(tmp_path, 'sleep 300 & echo $! > "$1"', str(tmp_path / "fork.pid")).start()
    killpg.track(proc.proc)
    fork = read_pid(tmp_path / "fork.pid")
    assert proc.proc is not None and wait_exit(proc.proc, 30)
    assert not gone(fork), "the fork should outlive its leader until we end the group"
    proc.stop()
    assert wait_gone(fork), "a fork left in the group survived stop()"


def test_forks_that_ignore_sigterm_go_with_their_leader(tmp_path: Path, killpg: KillpgSpy) -> None:
    # the fork writes its pid once it ignores SIGTERM, so the test cannot outrun the trap
    script = 'sh -c \'trap "" TERM; echo $$ > "$1"; exec sleep 300\' fork "$1" & exec sleep 300'
    proc = sh(tmp_path, script, str(tmp_path / "fork.pid")).start()
    popen = killpg.track(proc.proc)
    fork = read_pid(tmp_path / "fork.pid")
    proc.stop(timeout=10)
    assert popen.returncode == -signal.SIGTERM  # the leader went politely, the fork had to be killed
    assert wait_gone(fork)


def test_an_interrupted_wait_ends_the_whole_group_of_the_child(tmp_path: Path, killpg: KillpgSpy) -> None:
    # gate.interrupts.stop_child (a Ctrl-C during wait_child, a child nobody waited for): the leader
    # goes on the forwarded signal, and what it left in its group that ignores it is killed with it
    script = 'sh -c \'trap "" INT TERM; echo $$ > "$1"; exec sleep 300\' fork "$1" & exec sleep 300'
    popen = killpg.track(
        subprocess.Popen(["sh", "-c", script, "sh", str(tmp_path / "fork.pid")], start_new_session=True)
    )
    fork = read_pid(tmp_path / "fork.pid")
    try:
        assert stop_child(popen, signal.SIGINT, grace_s=10) == -signal.SIGINT
        assert wait_gone(fork), "a fork left in the child's group outlived the stop"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(fork, signal.SIGKILL)


def test_a_child_in_our_own_group_is_stopped_alone(tmp_path: Path, killpg: KillpgSpy) -> None:
    # no session of its own: signalling its "group" would be signalling ours (this test's process)
    popen = subprocess.Popen(["sh", "-c", 'trap "" TERM; echo ready; exec sleep 300'], stdout=subprocess.PIPE)
    assert popen.stdout is not None and popen.stdout.readline() == b"ready\n"
    assert end_child(popen, sig=signal.SIGTERM, timeout=0.5) == -signal.SIGKILL
    assert killpg.calls == []
    popen.stdout.close()


def test_kill_ends_the_group(tmp_path: Path, killpg: KillpgSpy) -> None:
    proc = sh(tmp_path, 'sleep 300 & echo $! > "$1"; exec sleep 300', str(tmp_path / "fork.pid")).start()
    popen = killpg.track(proc.proc)
    fork = read_pid(tmp_path / "fork.pid")
    proc.kill()
    assert popen.returncode == -signal.SIGKILL and wait_gone(fork)


def test_a_restart_reaps_the_previous_run_first(tmp_path: Path, killpg: KillpgSpy) -> None:
    proc = sh(tmp_path, "exit 0").start()
    first = killpg.track(proc.proc)
    assert wait_exit(first, 30)
    proc.start()
    assert first.returncode == 0 and proc.proc is not first
    killpg.track(proc.proc)
    proc.stop()


def test_wait_until_does_not_reap_and_names_a_port_lost_to_a_race(tmp_path: Path) -> None:
    out = (
        "ERROR: [Errno 98] error while attempting to bind on address ('127.0.0.1', 5): address already in use"
    )
    proc = ManagedProcess(
        "relay", [sys.executable, "-c", f"print({out!r}); raise SystemExit(1)"], log_path=tmp_path / "r.log"
    ).start()
    try:
        with pytest.raises(PortTaken) as info:
            wait_until(lambda: False, timeout=30, component="relay", what="ready", proc=proc, port=5)
        assert info.value.port == 5 and "exit status 1" in info.value.problem
        assert proc.proc is not None and proc.proc.returncode is None, "wait_until reaped the process"
        # the same exit without a port to blame is an ordinary start-up failure
        with pytest.raises(StackError) as plain:
            wait_until(lambda: False, timeout=30, component="relay", what="ready", proc=proc)
        assert not isinstance(plain.value, PortTaken) and "address already in use" in plain.value.log_tail
    finally:
        proc.stop()


def test_only_this_runs_output_counts(tmp_path: Path) -> None:
    """The log is appended across restarts: an old bind failure must not be blamed on a new exit."""
    log = tmp_path / "r.log"
    log.write_text("address already in use\n" * 50)
    proc = ManagedProcess("relay", [sys.executable, "-c", "raise SystemExit(3)"], log_path=log).start()
    try:
        with pytest.raises(StackError) as info:
            wait_until(lambda: False, timeout=30, component="relay", what="ready", proc=proc, port=5)
        assert not isinstance(info.value, PortTaken) and "status 3" in info.value.problem
        assert proc.output() == ""
    finally:
        proc.stop()


def test_a_check_that_finds_someone_else_ends_the_wait_at_once(tmp_path: Path) -> None:
    proc = sh(tmp_path, "exec sleep 300").start()

    def someone_else() -> bool:
        raise PortTaken("relay", 5, "another server answers")

    try:
        with pytest.raises(PortTaken):
            wait_until(someone_else, timeout=600, component="relay", what="ready", proc=proc, port=5)
    finally:
        proc.stop()
