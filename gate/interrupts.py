"""Ctrl-C and SIGTERM: stop promptly, tear down everything started, exit 130 or 143 — never 0.

:func:`handling` (entered once, by ``gate.cli.main``, for every verb) turns the first SIGINT or
SIGTERM into :class:`Interrupted`, a ``KeyboardInterrupt`` that carries the signal, so every
``finally`` and context manager on the way out runs: stacks stop, Locust is told to write what it
has, ephemeral databases are dropped. Signals that arrive while that teardown runs are noted, not
raised, so a second Ctrl-C cannot cut a teardown short and leave processes behind.

Child processes we wait on (a pytest of the features, a selftest run) live in a session of their
own, so a terminal's Ctrl-C reaches only us; :func:`wait_child` forwards it to the child exactly
once, waits for the child to tear down its own stack, and kills its process group only past a grace
period. They are started by gate/redacted_output.py's ``spawn``, which holds a Ctrl-C arriving
while the child starts until the child is ours to stop. The exit code of an interrupted verb is
``128 + signal`` (130, 143).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from gate.process_groups import end_child

GRACE_S = 60.0  # a child pytest stops its stack within seconds; this bounds a stuck one


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: unwind, tearing down, and exit ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = threading.local()
_received: list[int] = []  # every signal seen, in order (the first decides the exit code)


def received() -> int | None:
    """The first signal received while :func:`handling` was active, if any."""
    return _received[0] if _received else None


def as_interrupted(exc: KeyboardInterrupt) -> Interrupted:
    """A plain KeyboardInterrupt (Python's own SIGINT handling) as an :class:`Interrupted`."""
    return exc if isinstance(exc, Interrupted) else Interrupted(received() or signal.SIGINT)


@contextlib.contextmanager
def handling() -> Iterator[bool]:
    """Install the SIGINT/SIGTERM handlers for the duration (main thread only). Yields whether this
    is the outermost handling: a nested one (``relay-gate run`` calling a verb) changes nothing, and
    its verb must let the interrupt travel up rather than exit."""
    if getattr(_state, "active", False):
        yield False
        return
    if threading.current_thread() is not threading.main_thread():
        yield True
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        first = not _received
        _received.append(signum)
        if first:
            raise Interrupted(signum)
        # already unwinding: let the teardown finish (each step of it is bounded in time)

    previous = _install(dict.fromkeys(_SIGNALS, on_signal))
    _state.active = True
    _received.clear()
    try:
        yield True
    finally:
        _state.active = False
        _restore(previous)


def _install(handlers: dict[int, Any]) -> dict[int, Any]:
    """Install ``handlers`` (signal -> handler): the previous ones. A signal that had already arrived
    and whose handler raises leaves the handlers as they were, and is raised."""
    previous, raised = _swap_handlers(handlers)
    if raised is not None:
        _restore(previous)
        raise raised
    return previous


def _restore(previous: dict[int, Any]) -> None:
    """Put ``previous`` back, every one of them, then raise what a handler raised meanwhile."""
    _, raised = _swap_handlers(previous)
    if raised is not None:
        raise raised


def _swap_handlers(handlers: dict[int, Any]) -> tuple[dict[int, Any], BaseException | None]:
    """Set every handler of ``handlers``: (the previous ones, what a handler raised meanwhile).

    SIGINT and SIGTERM are blocked while the handlers change, so none can arrive half-way and leave
    one signal on a handler meant for a moment only (deferred()'s ``hold`` would then swallow every
    later Ctrl-C). A signal that had already arrived runs its handler inside the call that blocks
    them, and one arriving meanwhile inside the call that unblocks them: what either raises is
    returned, after every handler is set, never raised half-way."""
    raised: BaseException | None = None
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    except BaseException as exc:  # the handler ran once the signals were blocked: they are
        raised = exc
    previous: dict[int, Any] = {}
    try:
        for signum, handler in handlers.items():
            previous[signum] = signal.signal(signum, handler)
    finally:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        except BaseException as exc:  # the handler ran once the signals were unblocked: they are
            raised = raised or exc
    return previous, raised


_held: list[int] = []  # signals that arrived during a deferred() teardown


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Run a teardown to its end: SIGINT/SIGTERM arriving meanwhile are held, then delivered after it.

    A Ctrl-C that lands while a stack is being stopped (pytest tearing down its fixtures, a verb
    unwinding) would otherwise abort the stop half-way and orphan what was not stopped yet. Works in
    any process of ours, the gate's or a child pytest's, whoever's handler is installed: that handler
    gets the held signal afterwards. Main thread only (where Python runs signal handlers); nested: the
    outermost one delivers."""
    if threading.current_thread() is not threading.main_thread() or getattr(_state, "deferring", False):
        yield
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        _held.append(signum)

    previous = _install(dict.fromkeys(_SIGNALS, hold))
    _state.deferring = True
    try:
        yield
    finally:
        _state.deferring = False
        try:
            _restore(previous)
        finally:
            held = _held[:1]  # complete: ``hold`` is no longer installed
            _held.clear()
        if held:
            _deliver(held[0], previous[held[0]])


def _deliver(signum: int, handler: Any) -> None:
    """What the signal would have done had it not been held."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)  # the default action, now that the teardown is done


def wait_child(
    proc: subprocess.Popen[bytes],
    *,
    timeout_s: float | None = None,
    forward: int = signal.SIGINT,
    grace_s: float = GRACE_S,
) -> tuple[int, bool]:
    """Wait for a child started in a session of its own (``start_new_session=True``): (exit status,
    timed out). On an interrupt of ours, ``forward`` (SIGINT: pytest then tears down its fixtures) is
    sent to the child once; it gets ``grace_s`` to finish, then its process group is killed, and the
    interrupt is re-raised. Past ``timeout_s`` the child is stopped the same way and (status, True)
    returned."""
    try:
        try:
            return proc.wait(timeout=timeout_s), False
        except subprocess.TimeoutExpired:
            return stop_child(proc, forward, grace_s), True
    except KeyboardInterrupt:
        stop_child(proc, forward, grace_s)
        raise


def stop_child(proc: subprocess.Popen[bytes], sig: int, grace_s: float = GRACE_S) -> int:
    """Ask once, wait up to ``grace_s`` (further signals to us are noted, not raised), then kill the
    group while the leader is unreaped, so its process-group id cannot have been reused
    (gate/process_groups.py); its exit status. A child that leads no group of its own is signalled
    alone."""
    status = end_child(proc, sig=sig, timeout=grace_s)
    return proc.wait() if status is None else status
