"""Process groups, ended for sure: the one place that signals a child's group and reaps its leader.

Each child that does work for us (a server of the stack, a Locust process, a pytest run) leads its
own process group, and ``os.killpg`` on that group is only safe while the leader is unreaped: until
then its PID, which is the group's id, cannot be handed to an unrelated process (group). So liveness
is read with ``waitid(WNOWAIT)`` (:func:`exit_status`), which leaves an exited leader a zombie, and
the only reaping is :func:`reap_group`'s, right after it has SIGKILLed what is left of the group.
:func:`end_group` is the whole sequence: signal, wait, kill, reap; :func:`end_child` is it for any
child, one that leads no group of its own being signalled alone.

Standard library only, and nothing of the gate's: the stack (gate/stack/procs.py), the Locust
launcher (load/launch.py) and the interrupt handling (gate/interrupts.py, gate/redacted_output.py)
all end their children through this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import Any

__all__ = [
    "KILL_WAIT_S",
    "end_child",
    "end_group",
    "exit_status",
    "leads_group",
    "reap_group",
    "signal_group",
    "wait_exit",
]

KILL_WAIT_S = 5.0  # how long a SIGKILLed process may take to go (it cannot refuse; it can be slow)

# Held while checking that a leader is unreaped and signalling its group, and while reaping it, so no
# thread of ours reaps a leader between another's check and its killpg.
_LEADERS = threading.RLock()


def exit_status(proc: subprocess.Popen[Any]) -> int | None:
    """The exit status of ``proc`` once it has exited (``-N`` when signal N ended it), else None.

    Never reaps: an exited child stays a zombie, keeping its PID and process group id ours, until
    :func:`reap_group`.
    """
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        # Reaped behind Popen's back (SIGCHLD ignored, someone's waitpid(-1)): the PID is not ours any
        # more. Popen's poll() records that (as status 0), so nothing signals the PID again.
        with _LEADERS:
            return proc.poll()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def signal_group(proc: subprocess.Popen[Any], sig: int) -> bool:
    """Send ``sig`` to the process group ``proc`` leads, unless ``proc`` has been reaped (its group id
    may belong to someone else by now). An exited but unreaped leader still holds the id, so its
    forks are reached. True when the signal was sent."""
    with _LEADERS:
        exit_status(proc)  # notices a leader reaped behind our back
        if proc.returncode is not None:
            return False
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def wait_exit(proc: subprocess.Popen[Any], timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``proc`` to exit, without reaping it; True once it has."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while exit_status(proc) is None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def reap_group(proc: subprocess.Popen[Any]) -> int | None:
    """Once ``proc`` has exited: SIGKILL what is left of its process group, then reap it.

    Returns its exit status; None, doing nothing, while it still runs.
    """
    with _LEADERS:
        status = exit_status(proc)
        if status is None or proc.returncode is not None:
            return status
        # the leader is a zombie, so the group id is still ours: this reaches our forks and no one else
        signal_group(proc, signal.SIGKILL)
        return proc.wait()


def end_group(
    proc: subprocess.Popen[Any], *, sig: int | None = signal.SIGTERM, timeout: float = 5.0
) -> int | None:
    """End the process group ``proc`` leads, for sure, and reap ``proc``: its exit status.

    SIGCONT (a stopped process could not act on ``sig``) and ``sig`` (None: send nothing, let it end
    by itself), SIGKILL after ``timeout`` s, then SIGKILL for whatever is left in the group while the
    exited leader still holds the group id, then reap. None when even SIGKILL did not end the leader
    within :data:`KILL_WAIT_S`: it stays unreaped, and so still safe to signal.
    """
    if exit_status(proc) is None:
        if sig is not None:
            signal_group(proc, signal.SIGCONT)
            signal_group(proc, sig)
        if not wait_exit(proc, timeout):
            signal_group(proc, signal.SIGKILL)
            wait_exit(proc, KILL_WAIT_S)
    return reap_group(proc)


def leads_group(proc: subprocess.Popen[Any]) -> bool:
    """Whether ``proc`` (not yet reaped) leads a process group of its own (``start_new_session``)."""
    try:
        return os.getpgid(proc.pid) == proc.pid
    except (ProcessLookupError, PermissionError):
        return False


def end_child(proc: subprocess.Popen[Any], *, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
    """:func:`end_group` for a child that leads its group; one that does not is signalled alone:
    ``sig``, SIGKILL after ``timeout`` s, reaped. Its exit status; None when even SIGKILL did not end
    it within :data:`KILL_WAIT_S` (it is then left unreaped, not waited for)."""
    if exit_status(proc) is None and not leads_group(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            proc.send_signal(sig)
        if not wait_exit(proc, timeout):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                proc.kill()
            if not wait_exit(proc, KILL_WAIT_S):
                return None
        return proc.wait()
    return end_group(proc, sig=sig, timeout=timeout)
