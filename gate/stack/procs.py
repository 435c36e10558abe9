"""Child processes of the stack: started with a log file, waited on with deadlines, ended for sure.

Readiness is always a real signal polled until a deadline (see :func:`wait_until`), never a sleep.

Each child leads its own process group and is ended through gate/process_groups.py, which signals a
group only while its leader is unreaped and reaps it only after SIGKILLing what is left of the group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gate.errors import PortTaken, StackError
from gate.process_groups import KILL_WAIT_S, end_group, exit_status, reap_group, signal_group
from gate.stack.ports import address_in_use, free_port, port_in_use

__all__ = ["ManagedProcess", "free_port", "port_in_use", "tail", "wait_until"]


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 16_384))
        data = f.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    component: str,
    what: str,
    fix: str = "",
    log: Path | None = None,
    proc: ManagedProcess | subprocess.Popen[bytes] | None = None,
    port: int | None = None,
    interval: float = 0.02,
) -> None:
    """Poll ``check`` until it returns True; raise :class:`StackError` naming ``what`` at the deadline.

    If ``proc`` exits while we wait, fail at once with its exit status instead of waiting out the clock
    (without reaping it: the caller's stop() does that). Given the ``port`` it was to listen on, an
    exit whose output says the address is in use is a :class:`PortTaken`. ``check`` may raise; that
    counts as "not yet", except a :class:`StackError` (e.g. PortTaken: someone else answered), which
    ends the wait.
    """
    managed = proc if isinstance(proc, ManagedProcess) else None
    popen = managed.proc if managed is not None else proc
    if log is None and managed is not None:
        log = managed.log_path
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    delay = interval
    while True:
        try:
            if check():
                return
        except StackError:
            raise
        except Exception as exc:
            last_exc = exc
        status = exit_status(popen) if isinstance(popen, subprocess.Popen) else None
        if status is not None:
            output = managed.output() if managed is not None else tail(log, 40)
            if port is not None and address_in_use(output):
                raise PortTaken(
                    component,
                    port,
                    f"127.0.0.1:{port} was taken before it could listen (exit status {status})",
                    log_tail=tail(log),
                )
            raise StackError(
                component, f"exited with status {status} before {what}", fix=fix, log_tail=tail(log)
            )
        if time.monotonic() >= deadline:
            why = f" (last error: {last_exc})" if last_exc else ""
            raise StackError(
                component, f"{what} did not happen within {timeout:g} s{why}", fix=fix, log_tail=tail(log)
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


class ManagedProcess:
    """One child process in its own process group, with its output in a log file.

    ``user``/``group`` run it as another account (PostgreSQL refuses to run as root). Its group is
    only ever signalled while it is unreaped, and reaped only by :meth:`stop` / :meth:`kill` (or the
    next :meth:`start`): see the module's docstring.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: int | None = None,
        group: int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.group = group
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where this run's output begins in the (appended) log

    def start(self) -> ManagedProcess:
        if self.proc is not None:
            if self.alive():
                return self
            reap_group(self.proc)  # the previous run, and whatever it left in its group
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._log_start = log.seek(0, os.SEEK_END)
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=self.group,
                extra_groups=[] if self.user is not None and os.geteuid() == 0 else None,
                start_new_session=True,  # own process group: Ctrl-C in the terminal is ours to relay
            )
        except FileNotFoundError as exc:
            raise StackError(self.name, f"cannot execute {self.argv[0]}: {exc.strerror}") from exc
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (read without reaping), else None."""
        return exit_status(self.proc) if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and exit_status(self.proc) is None

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.alive():
            signal_group(self.proc, sig)

    def pause(self) -> None:
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, no goodbye (a crash)."""
        if self.proc is not None:
            end_group(self.proc, sig=signal.SIGKILL, timeout=KILL_WAIT_S)

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
        """Ask politely, then kill; forks left in its group go too. Also wakes a paused process first
        so it can hear the request. On a process that already exited: reaps it (and its forks)."""
        if self.proc is not None:
            end_group(self.proc, sig=sig, timeout=timeout)

    def output(self) -> str:
        """What this run (since the last :meth:`start`) wrote to the log, up to its last 64 KiB."""
        try:
            with open(self.log_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(self._log_start, size - 65_536))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.log_path, lines)
