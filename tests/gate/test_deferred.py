"""gate.interrupts.deferred: a teardown runs to its end, and the signal that arrived meanwhile is
delivered after it — to whichever handler was installed (the gate's, pytest's, Python's default)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from gate import interrupts

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from gate import interrupts

    if sys.argv[1] == "handling":
        ctx = interrupts.handling()
        ctx.__enter__()
    steps = []
    try:
        with interrupts.deferred():
            os.kill(os.getpid(), getattr(signal, sys.argv[2]))
            os.kill(os.getpid(), signal.SIGINT)  # a second one, while still tearing down
            steps.append("torn down")
        steps.append("after")
    except KeyboardInterrupt as exc:
        print("interrupted", type(exc).__name__, steps, flush=True)
        sys.exit(3)
    print("not interrupted", steps, flush=True)
    """
)


@pytest.mark.parametrize(
    ("mode", "sig", "expected"),
    [
        ("default", "SIGINT", "interrupted KeyboardInterrupt ['torn down']"),
        ("handling", "SIGINT", "interrupted Interrupted ['torn down']"),
        ("handling", "SIGTERM", "interrupted Interrupted ['torn down']"),
    ],
)
def test_a_signal_during_a_teardown_waits_for_its_end(mode: str, sig: str, expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, sig], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 3 and proc.stdout.strip() == expected, proc.stdout + proc.stderr


def test_sigterm_with_the_default_action_still_ends_the_process_after_the_teardown() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, "default", "SIGTERM"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # the held SIGINT is not delivered (the first held signal decides), SIGTERM's default action is
    assert proc.returncode == -15, proc.stdout + proc.stderr
    assert proc.stdout == ""


class Boom(Exception):
    pass


@pytest.fixture
def raising_handlers() -> Iterator[dict[int, Callable[[int, FrameType | None], None]]]:
    """SIGINT and SIGTERM handlers that raise, as the gate's and Python's do; the originals after."""

    def boom(signum: int, frame: FrameType | None) -> None:
        raise Boom(signal.Signals(signum).name)

    handlers = {signal.SIGINT: boom, signal.SIGTERM: boom}
    before = {s: signal.signal(s, h) for s, h in handlers.items()}
    yield handlers
    for s, h in before.items():
        signal.signal(s, h)


def _arriving_after_the_first_change(
    monkeypatch: pytest.MonkeyPatch, when: Callable[[int, object], bool], sig: int
) -> None:
    """A signal arrives at the instant one handler has changed and the other has not yet."""
    real = signal.signal
    sent: list[bool] = []

    def changing(signum: int, handler: object) -> object:
        previous = real(signum, handler)  # type: ignore[arg-type]
        if not sent and when(signum, handler):
            sent.append(True)
            os.kill(os.getpid(), sig)
        return previous

    monkeypatch.setattr(interrupts.signal, "signal", changing)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_a_teardown_restores_the_handlers_leaves_none_on_hold(
    raising_handlers: dict[int, object], monkeypatch: pytest.MonkeyPatch, sig: int
) -> None:
    # on the way out, after the first handler is back and before the second is
    _arriving_after_the_first_change(monkeypatch, lambda s, h: h is raising_handlers[s], sig)
    with pytest.raises(Boom), interrupts.deferred():
        pass
    monkeypatch.undo()
    assert {s: signal.getsignal(s) for s in raising_handlers} == raising_handlers


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_a_teardown_begins_is_held_and_leaves_none_on_hold(
    raising_handlers: dict[int, object], monkeypatch: pytest.MonkeyPatch, sig: int
) -> None:
    # on the way in, after the first handler is "hold" and before the second is
    steps: list[str] = []
    _arriving_after_the_first_change(monkeypatch, lambda s, h: h is not raising_handlers[s], sig)
    with pytest.raises(Boom), interrupts.deferred():
        steps.append("torn down")
    monkeypatch.undo()
    assert steps == ["torn down"], "the signal cut the teardown short instead of waiting for its end"
    assert {s: signal.getsignal(s) for s in raising_handlers} == raising_handlers
