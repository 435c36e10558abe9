"""gate.interrupts.deferred: a teardown runs to its end, and the signal that arrived meanwhile is
delivered after it — to whichever handler was installed (the gate's, pytest's, Python's default)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

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
