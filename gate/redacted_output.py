"""Child output, redacted on its way to a terminal or a log file.

The gate runs pytest and Locust as child processes, and what they print (failure reprs with headers
and bodies, tracebacks, log lines) can hold a secret. Their output therefore never reaches a terminal
or a file directly: a thread per stream copies it through a :class:`~gate.redaction.Redactor` as it
arrives, so a log file is redacted as it is written and a crash half-way leaves nothing to clean up.

Some secrets exist only in the child: the reference stack's keys are made up inside the child pytest.
The child hands them over on an inherited pipe (its number in ``RELAY_GATE_SECRETS_FD``, one JSON list
per line), never in a file or on the command line, where other users could read them. The child sends
them before anything that could print them, so by the time a chunk of output that holds one reaches
the parent, the secret is already waiting in the pipe: the copier drains it before redacting.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from gate.interrupts import deferred, wait_child
from gate.process_groups import end_child, exit_status
from gate.redaction import Redactor

SECRETS_FD_ENV = "RELAY_GATE_SECRETS_FD"
# after the child ended, how long its output may take to drain (a grandchild that kept the pipe open
# must not hang the gate)
DRAIN_TIMEOUT_S = 10.0
STOP_GRACE_S = 30.0  # a child nobody waited for: time to stop what it started (pytest, its stack)
_CHUNK = 65_536


class StreamRedaction:
    """Redacts text that arrives in pieces. Complete lines go out at once; a partial line goes out as
    soon as no secret or URL password could straddle its end, so pytest's progress dots stay live."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._pending = ""

    def feed(self, text: str) -> str:
        head, newline, tail = (self._pending + text).rpartition("\n")
        out = self.redactor.text(head + newline) if newline else ""
        if tail and not self.redactor.could_continue(tail):
            out, tail = out + self.redactor.text(tail), ""
        self._pending = tail
        return out

    def close(self) -> str:
        out, self._pending = self.redactor.text(self._pending), ""
        return out


# -- the secrets pipe ------------------------------------------------------------------------------


class SecretsInbox:
    """The parent's end of the secrets pipe: what arrives joins the redactor."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._read, self.write_fd = os.pipe()
        os.set_blocking(self._read, False)
        self._buffer = b""
        self._lock = threading.Lock()

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return {**base, SECRETS_FD_ENV: str(self.write_fd)}

    def child_started(self) -> None:
        """The child holds its own copy of the write end now; the parent's is closed."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def drain(self) -> None:
        with self._lock:
            while self._read >= 0:
                try:
                    chunk = os.read(self._read, _CHUNK)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    values = json.loads(line)
                    if isinstance(values, list):
                        self.redactor.add(str(v) for v in values)

    def close(self) -> None:
        self.child_started()
        self.drain()
        with self._lock:
            if self._read >= 0:
                os.close(self._read)
                self._read = -1


class SecretsOutbox:
    """The child's end: :meth:`send` hands secrets to the parent that started it, if one listens."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def from_env(cls) -> SecretsOutbox | None:
        # taken out of the environment so that this process's own children (the stack's services)
        # never inherit a number that means nothing to them
        raw = os.environ.pop(SECRETS_FD_ENV, None)
        try:
            fd = int(raw) if raw else -1
            if fd < 0 or not stat.S_ISFIFO(os.fstat(fd).st_mode):
                return None
        except (ValueError, OSError):
            return None
        return cls(fd)

    def send(self, values: Iterable[str]) -> None:
        data = (json.dumps([v for v in values if v]) + "\n").encode()
        with contextlib.suppress(OSError):  # the parent went away: nobody left to print anything
            while data:
                data = data[os.write(self.fd, data) :]


# -- copying a child's output ----------------------------------------------------------------------


def _writer(sink: TextIO) -> Callable[[str], None]:
    broken = False

    def write(text: str) -> None:
        nonlocal broken
        if broken:
            return  # keep draining the child, or it blocks on a full pipe
        try:
            try:
                sink.write(text)
            except UnicodeEncodeError:
                sink.write(text.encode(sink.encoding or "utf-8", "replace").decode(sink.encoding or "utf-8"))
            sink.flush()
        except (OSError, ValueError):
            broken = True

    return write


def _pump(
    src: IO[bytes], write: Callable[[str], None], redactor: Redactor, inbox: SecretsInbox | None
) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    stream = StreamRedaction(redactor)
    with src:
        while chunk := os.read(src.fileno(), _CHUNK):
            if inbox is not None:
                inbox.drain()  # whatever secret this chunk holds was sent before it
            out = stream.feed(decoder.decode(chunk))
            if out:
                write(out)
    if inbox is not None:
        inbox.drain()
    out = stream.feed(decoder.decode(b"", final=True)) + stream.close()
    if out:
        write(out)


@dataclass
class Child:
    """A child process whose output is being copied, redacted, by threads of this process."""

    popen: subprocess.Popen[bytes]
    threads: list[threading.Thread]
    inbox: SecretsInbox | None = None
    owned: list[IO[Any]] = field(default_factory=list)  # sinks to close once the output is copied

    def finish(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Wait for the copies to complete, then close what the child used.

        Called once the child has ended; on a way out that did not wait for it (an interrupt landing
        between the start and the wait), the child is stopped here first, asked with SIGTERM and
        killed past the grace period, so it is never left running behind us. Bounded: a child that
        even SIGKILL cannot end (stuck in the kernel) is left, not waited for."""
        if exit_status(self.popen) is None:
            end_child(self.popen, sig=signal.SIGTERM, timeout=STOP_GRACE_S)
        for t in self.threads:
            t.join(timeout)
        if self.inbox is not None:
            self.inbox.close()
        for f in self.owned:
            with contextlib.suppress(OSError, ValueError):
                f.close()

    def wait(self, timeout: float | None = None) -> int:
        rc = self.popen.wait(timeout)
        self.finish()
        return rc


def spawn(
    argv: Sequence[str],
    *,
    redactor: Redactor,
    stdout: TextIO,
    stderr: TextIO | None = None,
    secrets_from_child: bool = False,
    owned: Sequence[IO[Any]] = (),
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> Child:
    """Start ``argv`` with its stdout (and stderr, or merged into stdout when ``stderr`` is None)
    copied through ``redactor`` to the given text sinks. With ``secrets_from_child`` the child may
    hand secrets over (see the module docstring)."""
    inbox = SecretsInbox(redactor) if secrets_from_child else None
    child_env = dict(os.environ if env is None else env)
    child: Child | None = None
    try:
        # A Ctrl-C landing while the child starts (in the fork and exec, before the caller holds it)
        # would leave it running unowned: it is held until the Child exists, then raised here, and
        # the child stopped on the way out.
        with deferred():
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if stderr is not None else subprocess.STDOUT,
                env=inbox.env(child_env) if inbox is not None else child_env,
                pass_fds=(inbox.write_fd,) if inbox is not None else (),
                **popen,
            )
            child = Child(proc, [], inbox, list(owned))
            if inbox is not None:
                inbox.child_started()
            streams = [(proc.stdout, stdout), *([(proc.stderr, stderr)] if stderr is not None else [])]
            for src, sink in streams:
                assert src is not None
                pump = (src, _writer(sink), redactor, inbox)
                t = threading.Thread(target=_pump, args=pump, name="redacted-output", daemon=True)
                t.start()
                child.threads.append(t)
    except BaseException:
        if child is not None:
            child.finish()  # stops it: it has not been handed to anyone who would
        elif inbox is not None:
            inbox.close()
        raise
    return child


def spawn_to_log(argv: Sequence[str], log: Path, *, redactor: Redactor, **popen: Any) -> Child:
    """Start ``argv`` with stdout and stderr written, redacted as they come, to ``log``."""
    f = open(log, "w", encoding="utf-8")  # noqa: SIM115 - the Child closes it when the output is copied
    try:
        return spawn(argv, redactor=redactor, stdout=f, owned=[f], **popen)
    except BaseException:
        f.close()
        raise


def run(argv: Sequence[str], *, redactor: Redactor, **popen: Any) -> int:
    """Run ``argv`` to completion with its output on this process's stdout and stderr, redacted with
    ``redactor`` and whatever secrets the child hands over; its exit status.

    The child runs in a session of its own, so a terminal's Ctrl-C reaches only us: it is forwarded
    once (gate/interrupts.py), and the child gets time to stop what it started (pytest stops its
    stack) before the interrupt goes on."""
    child = spawn(
        argv,
        redactor=redactor,
        stdout=sys.stdout,
        stderr=sys.stderr,
        secrets_from_child=True,
        start_new_session=True,
        **popen,
    )
    try:
        return wait_child(child.popen)[0]
    finally:
        child.finish()
