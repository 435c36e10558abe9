"""Every process a command starts, by PID, so a test can prove none is left when it ends.

:class:`ProcessWatcher` polls /proc while the command runs and keeps every descendant of its root
process it ever sees, with the process's start time (so a reused PID is not mistaken for it). The
processes of a stack live in sessions of their own and are re-parented to init when their parent
dies: seen once as descendants, they are still tracked after that.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, start time in ticks, state) of ``pid``, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces: split after its closing parenthesis
    rest = raw[raw.rindex(")") + 2 :].split()
    return int(rest[1]), int(rest[19]), rest[0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


@dataclass
class ProcessWatcher:
    root: int
    interval_s: float = 0.05
    seen: dict[int, tuple[int, str]] = field(default_factory=dict)  # pid -> (start ticks, cmdline)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProcessWatcher:
        self._thread = threading.Thread(target=self._run, name="process-watcher", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            time.sleep(self.interval_s)

    def poll(self) -> None:
        parents: dict[int, int] = {}
        starts: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = _stat(int(entry))
                if st is not None:
                    parents[int(entry)], starts[int(entry)] = st[0], st[1]
        known = {self.root, *self.seen}
        changed = True
        while changed:  # descendants of the root, or of anything already seen
            changed = False
            for pid, ppid in parents.items():
                if ppid in known and pid not in known:
                    known.add(pid)
                    self.seen[pid] = (starts[pid], _cmdline(pid))
                    changed = True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def alive(self) -> list[str]:
        """The tracked processes that still exist (same PID, same start time, not a zombie)."""
        left = []
        for pid, (start, cmd) in self.seen.items():
            st = _stat(pid)
            if st is not None and st[1] == start and st[2] != "Z":
                left.append(f"{pid} {cmd}")
        return left

    def wait_gone(self, timeout_s: float = 10.0) -> list[str]:
        """Give exiting processes ``timeout_s`` to go; what is left after that."""
        deadline = time.monotonic() + timeout_s
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left
