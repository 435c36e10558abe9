"""The processes of an embedded PostgreSQL server: the postmaster's children, signalled and waited for.

The children are found through /proc; EmbeddedPostgres.stop says why the process group is not enough.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path


def children(pid: int | None) -> list[int]:
    """PIDs whose parent is ``pid``, from /proc (``pgrep -P`` where there is no /proc)."""
    if pid is None:
        return []
    proc = Path("/proc")
    if not proc.is_dir():
        res = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
        return [int(x) for x in res.stdout.split()]
    kids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        fields = text.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            kids.append(int(entry.name))
    return kids


def signal_pids(pids: list[int], sig: int) -> None:
    """Send ``sig`` to each pid that still exists and is ours to signal."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, T, Z...), None when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return None


def wait_until_stopped(pids: list[int], *, timeout: float) -> None:
    """Return once every pid is stopped (SIGSTOP), a zombie or gone, or at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {_proc_state(p) for p in pids}
        if states <= {"T", "t", "Z", None}:
            return
        time.sleep(0.005)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie (exited, not yet reaped by whoever adopted it) holds no resources any more.
    return _proc_state(pid) == "Z"


def wait_gone(pids: list[int], *, timeout: float) -> None:
    """Return once every pid has exited, or at the deadline."""
    deadline = time.monotonic() + timeout
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
