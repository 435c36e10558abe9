"""Child processes of the stack: started with a log file, waited on with deadlines, ended for sure.

Readiness is always a real signal polled until a deadline (see :func:`wait_until`), never a sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gate.errors import StackError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


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
    proc: subprocess.Popen[bytes] | None = None,
    interval: float = 0.02,
) -> None:
    """Poll ``check`` until it returns True; raise :class:`StackError` naming ``what`` at the deadline.

    If ``proc`` exits while we wait, fail at once with its exit status instead of waiting out the clock.
    ``check`` may raise; that counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    delay = interval
    while True:
        try:
            if check():
                return
        except Exception as exc:
            last_exc = exc
        if proc is not None and proc.poll() is not None:
            raise StackError(
                component,
                f"exited with status {proc.returncode} before {what}",
                fix=fix,
                log_tail=tail(log),
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

    ``user``/``group`` run it as another account (PostgreSQL refuses to run as root).
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

    def start(self) -> ManagedProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive() and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def pause(self) -> None:
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, no goodbye (a crash)."""
        if self.proc is None:
            return
        self.send_signal(signal.SIGCONT)
        self.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
        """Ask politely, then kill. Also wakes a paused process first so it can hear the request."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.send_signal(signal.SIGCONT)
            self.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
        # children left in the group (forks of the server) go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 15) -> str:
        return tail(self.log_path, lines)
