"""Start Locust for ``relay-gate load``: one process, a master and N workers on loopback, or a master
alone whose workers run on other hosts (``relay-gate load --master``, see :attr:`LocustPlan.master_bind`).

Locust monkey-patches its process with gevent, so it only ever runs here as child processes; this
module itself never imports it. Each process's output goes, redacted as it comes, to a log file under
the run's results folder (``load/logs/``), whose tail is shown when something goes wrong; the master
(or the lone process) appends one JSON line per second to a progress file, which
:meth:`LocustRun.progress` reads.

Each process leads its own process group, signalled only through gate/stack/procs.py (never once reaped).
The workers are started only once the master itself listens on its port (read from /proc): a port
taken before the master bound it gets the master a new one, and workers never join someone else's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate import interrupts
from gate.errors import PortTaken, StackError
from gate.process_groups import end_group, exit_status, signal_group
from gate.redacted_output import Child, spawn_to_log
from gate.redaction import Redactor
from gate.stack.ports import address_in_use, listens, on_free_port
from gate.stack.procs import tail
from load import settings

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# the master waits this long for its workers to connect, and a run this long beyond its duration
# (start-up, the workers' final reports, writing results) before it is declared hung
CONNECT_TIMEOUT_S = 30
GRACE_S = 60


@dataclass
class LocustPlan:
    host: str
    users: int
    duration_s: int
    arrival_rate: float | None  # None: closed model
    think_time: str
    workers: int  # 0: a single process
    slos: Path
    results: Path
    run_id: str
    target_name: str
    env: dict[str, str] = field(default_factory=dict, repr=False)  # keys and weights
    # --request-log: one JSON line per request (load/requestlog.py); in a distributed run the master
    # hands the option to its workers, and each writes <stem>.worker-<index><suffix> beside it
    request_log: Path | None = None
    # what must not reach the log files (the keys in ``env`` are added anyway)
    secrets: list[str] = field(default_factory=list, repr=False)
    # --master: (host, port) the master listens on for ``workers`` workers started elsewhere
    # (``relay-gate load --worker``, plain ``locust --worker``); it starts none itself
    master_bind: tuple[str, int] | None = None
    # how long the master waits for its workers to join before it runs with those that did (INVALID)
    join_timeout_s: float = CONNECT_TIMEOUT_S

    @property
    def spawn_rate(self) -> int:
        # all users at once (an open-model pool must be there from the first ticket), but no more
        # than Locust's advice of 100 per second per process
        return max(1, min(self.users, 100 * max(1, self.workers)))


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    output: Child | None = None  # the thread writing its redacted log (None: output not captured)

    def finish(self) -> None:
        """The whole log is written (and its file closed) before anyone reads its tail."""
        if self.output is not None:
            self.output.finish()


class LocustRun:
    def __init__(self, plan: LocustPlan) -> None:
        self.plan = plan
        self.log_dir = plan.results / "load" / "logs"
        self.progress_file = self.log_dir / "progress.jsonl"
        self._redactor = Redactor([*plan.secrets, *settings.api_keys(plan.env)])
        self.master: _Proc | None = None
        self.master_port: int | None = None
        self.workers: list[_Proc] = []
        self._progress_pos = 0

    def _common(self) -> list[str]:
        # -P: Locust runs in the caller's folder, whose own load/ or gate/ must not shadow ours
        return [sys.executable, "-P", "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "INFO"]

    def master_argv(self, port: int | None, bind_host: str = "127.0.0.1") -> list[str]:
        p = self.plan
        argv = [
            *self._common(),
            "--headless", "--only-summary", "--host", p.host,
            "-u", str(p.users), "-r", str(p.spawn_rate), "-t", f"{p.duration_s}s", "--stop-timeout", "0",
            "--arrival-rate", f"{p.arrival_rate or 0:g}", "--think-time", p.think_time,
            "--slos", str(p.slos), "--results-dir", str(p.results), "--run-id", p.run_id,
            "--target-name", p.target_name, "--progress-file", str(self.progress_file),
        ]  # fmt: skip
        if p.request_log is not None:
            argv += ["--request-log", str(p.request_log)]
        if port is not None:
            argv += [
                "--master", "--master-bind-host", bind_host, "--master-bind-port", str(port),
                "--expect-workers", str(p.workers), "--join-timeout", f"{p.join_timeout_s:g}",
            ]  # fmt: skip
        return argv

    def worker_argv(self, port: int) -> list[str]:
        # the worker reads the master's spec: the master refuses a worker whose spec differs
        return [
            *self._common(), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
            "--slos", str(self.plan.slos),
        ]  # fmt: skip

    def _spawn(self, name: str, argv: list[str]) -> _Proc:
        log = self.log_dir / f"{name}.log"
        env = {**os.environ, **self.plan.env, "PYTHONUNBUFFERED": "1"}
        # the log is written redacted as Locust writes it (a traceback can quote a key or a URL);
        # own session: Ctrl-C is ours to relay, as a SIGTERM on which Locust still writes its results
        child = spawn_to_log(
            argv, log, redactor=self._redactor, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        return _Proc(name, child.popen, log, child)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.progress_file.unlink(missing_ok=True)
        # Each process is ours (on self, where stop() finds it) before a Ctrl-C arriving as it starts
        # is raised: deferred() holds the signal until the assignment is done.
        if not self.plan.workers:
            with interrupts.deferred():
                self.master = self._spawn("locust", self.master_argv(None))
            return
        if self.plan.master_bind is not None:  # the workers run elsewhere and connect to it
            host, port = self.plan.master_bind
            with interrupts.deferred():
                self.master = self._spawn("master", self.master_argv(port, host))
            self.master_port = port
            try:
                self._await_listening(self.master, port, host)
            except BaseException:
                end_group(self.master.popen)
                self.master.finish()
                raise
            return
        self.master, port = on_free_port("locust master", self._start_master)
        if exit_status(self.master.popen) is not None:
            return  # it ended before listening (a bad option, say): its exit status says why
        self.master_port = port
        for i in range(self.plan.workers):
            with interrupts.deferred():
                self.workers.append(self._spawn(f"worker-{i}", self.worker_argv(port)))

    def _start_master(self, port: int) -> tuple[_Proc, int]:
        """The master on ``port``, once it listens there itself (or has ended for another reason)."""
        master: _Proc | None = None
        try:
            with interrupts.deferred():
                master = self._spawn("master", self.master_argv(port))
            self._await_listening(master, port)
        except BaseException:  # PortTaken, a master that never listens, Ctrl-C: leave nothing behind
            if master is not None:
                end_group(master.popen)
                master.finish()
            raise
        return master, port

    @staticmethod
    def _await_listening(master: _Proc, port: int, host: str = "127.0.0.1") -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not listens(master.popen.pid, port):
            status = exit_status(master.popen)
            if status is not None:
                if address_in_use(tail(master.log, 40)):
                    raise PortTaken(
                        "locust master",
                        port,
                        f"{host}:{port} was taken before the master could bind it (exit {status})",
                        log_tail=tail(master.log),
                    )
                return
            if time.monotonic() > deadline:
                raise StackError(
                    "locust master",
                    f"did not listen on {host}:{port} within {CONNECT_TIMEOUT_S} s",
                    fix=f"read {master.log}",
                    log_tail=tail(master.log),
                )
            time.sleep(0.05)

    @property
    def deadline_s(self) -> float:
        join = self.plan.join_timeout_s if self.plan.workers else 0.0
        return self.plan.duration_s + CONNECT_TIMEOUT_S + join + GRACE_S

    def running(self) -> bool:
        return self.master is not None and exit_status(self.master.popen) is None

    def progress(self) -> dict[str, Any] | None:
        """The newest progress line, if any arrived since the last call."""
        try:
            with open(self.progress_file) as f:
                f.seek(self._progress_pos)
                chunk = f.read()
        except FileNotFoundError:
            return None
        lines = chunk.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # half-written; next time
        self._progress_pos += sum(len(line) for line in lines)
        for line in reversed(lines):
            with contextlib.suppress(ValueError):
                return dict(json.loads(line))
        return None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Locust still writes its results), then SIGKILL whatever is left; a Ctrl-C that
        arrives meanwhile waits until every process is gone (gate/interrupts.py)."""
        with interrupts.deferred():
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        for p in self._procs():
            if exit_status(p.popen) is None:
                signal_group(p.popen, signal.SIGTERM)
        self.wait_all(timeout)

    def wait_all(self, timeout: float) -> None:
        """Wait for every process to end by itself until ``timeout``; SIGKILL those that do not, and
        whatever each left in its group; reap them all."""
        deadline = time.monotonic() + timeout
        for p in self._procs():
            end_group(p.popen, sig=None, timeout=max(0.1, deadline - time.monotonic()))
            p.finish()

    def exit_codes(self) -> dict[str, int | None]:
        """Each process's exit status (None while it runs), read without reaping."""
        return {p.name: exit_status(p.popen) for p in self._procs()}

    def _procs(self) -> list[_Proc]:
        return [p for p in [self.master, *self.workers] if p is not None]

    def log_tail(self, name: str | None = None, lines: int = 20) -> str:
        proc = self.master if name is None else next((p for p in self.workers if p.name == name), None)
        return tail(proc.log, lines) if proc else ""
