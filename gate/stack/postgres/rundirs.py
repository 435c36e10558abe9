"""Run dirs of embedded PostgreSQL servers: where they go, and the reaping of those whose owner died.

A run dir (``relay-gate-pg-*``) holds one server's data and socket, owned by the account the server
runs as: in RAM (``/dev/shm``) when there is room, else in the work dir or the cache (see
:func:`run_base`). Its owner holds an flock on ``owner.lock`` until close(); the dir of an owner that
died without close() is removed, with the server still running in it, when the next server starts
in the same place.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import time
from pathlib import Path

from gate.errors import StackError
from gate.stack.postgres.install import COMPONENT, Account, account_can, cache_root
from gate.stack.postgres.procs import children, signal_pids, wait_gone

RUN_PREFIX = "relay-gate-pg-"  # run dirs (data + socket) in shared places: /dev/shm, the cache
# World-writable, but run dirs in it are made with mkdtemp: unique names, mode 700.
_SHM = Path("/dev/shm")  # noqa: S108


def run_base(account: Account, own_dir: Path) -> Path:
    """Where the data and socket dirs go: the account must be able to traverse to them.

    RAM first (``/dev/shm`` with room to spare): the data is throwaway, and on a slow disk the
    ~1000-file template copy is most of a start (0.8 s against 0.1 s measured on a CI VM).
    Then the caller's work dir, unless it is closed to the account (pytest's tmp dirs are mode
    700 and root's; we never loosen them), then the cache. ``RELAY_GATE_PG_RUN_DIR`` overrides.
    """
    candidates = [Path(p) for p in [os.environ.get("RELAY_GATE_PG_RUN_DIR")] if p]
    if not candidates:
        if roomy(_SHM, 1 << 30):
            candidates.append(_SHM)
        candidates += [own_dir, cache_root()]
    for base in candidates:
        if account.uid is None or account_can(account, ["/bin/sh", "-c", 'cd "$1"', "sh", str(base)]):
            return base
    raise StackError(
        COMPONENT,
        f"account {account.name!r} cannot reach any of {', '.join(map(str, candidates))}",
        fix="set RELAY_GATE_PG_RUN_DIR to a directory every user can traverse",
    )


def roomy(path: Path, free_bytes: int) -> bool:
    """Whether we may create dirs in ``path`` and its filesystem has ``free_bytes`` to spare."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= free_bytes


def reap_orphans(base: Path) -> None:
    """Remove run dirs (and servers) left by owners that died without close(): a SIGKILLed test run
    must not leak RAM in /dev/shm or a postmaster forever. A run dir's owner holds an flock on its
    ``owner.lock`` for as long as it lives; a dir without one is left alone for a minute (it may
    be being set up right now)."""
    for run in base.glob(f"{RUN_PREFIX}*"):
        lock = run / "owner.lock"
        try:
            if run.is_symlink() or not run.is_dir():
                continue
            if not lock.exists():
                if time.time() - run.stat().st_mtime < 60:
                    continue
            else:
                fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive
                finally:
                    os.close(fd)
            _kill_orphan_server(run / "data")
            release_sysv_segment(run / "data")
            shutil.rmtree(run, ignore_errors=True)
        except OSError:
            continue  # another user's dir, or gone meanwhile: not ours to judge


def _kill_orphan_server(data: Path) -> None:
    """SIGKILL the postmaster recorded in ``data`` (and its children), if it is really that server."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        # PIDs get reused: only kill a process whose command line names this data dir.
        if str(data).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, signal.SIGSTOP)
        kids = children(pid)
        signal_pids([pid, *kids], signal.SIGKILL)
        wait_gone([pid, *kids], timeout=5.0)


def release_sysv_segment(data: Path) -> None:
    """After a SIGKILL, the server's small SysV shared memory segment outlives it: remove it.

    ``postmaster.pid`` line 7 holds "<key> <shmid>"; a clean shutdown removes the file (and segment).
    Best effort: this only frees a few bytes of kernel memory.
    """
    with contextlib.suppress(OSError, IndexError, ValueError):
        lines = (data / "postmaster.pid").read_text().splitlines()
        shmid = int(lines[6].split()[1])
        import ctypes  # only needed on this rare path

        libc = ctypes.CDLL(None, use_errno=True)
        ipc_rmid = 0
        # Only an unattached segment is removed: the kernel keeps it while anything maps it.
        libc.shmctl(shmid, ipc_rmid, None)
