"""Loopback ports for the listeners the gate starts, and another port when the first was taken.

:func:`free_port` asks the kernel for a port nothing listens on and lets it go again: until our server
binds it, anyone can take it. So every listener the gate starts on a port of its choosing goes
through :func:`on_free_port`, which tries a new port when a launch fails with
:class:`~gate.errors.PortTaken` (the server exited saying the address is in use, or another server
answered on the port instead of ours), at most :data:`BIND_ATTEMPTS` times.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gate.errors import PortTaken, StackError

HOST = "127.0.0.1"
BIND_ATTEMPTS = 3
# uvicorn, redis-server, PostgreSQL, Python's socketserver and Locust (zmq) all end with the errno text
_IN_USE = re.compile(r"address already in use", re.IGNORECASE)

T = TypeVar("T")


def free_port(host: str = HOST) -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def address_in_use(output: str) -> bool:
    """Whether a server's output says it could not bind because the address is in use."""
    return _IN_USE.search(output) is not None


def on_free_port(
    component: str,
    launch: Callable[[int], T],
    *,
    first: int | None = None,
    attempts: int = BIND_ATTEMPTS,
    host: str = HOST,
) -> T:
    """``launch(port)`` on a free port (``first`` if given), again on a new one when it raises
    :class:`PortTaken`; after ``attempts`` ports, a :class:`StackError` naming ``component`` and them.

    ``launch`` must leave nothing running when it raises.
    """
    tried: list[int] = []
    while True:
        port = first if first is not None and not tried else free_port(host)
        tried.append(port)
        try:
            return launch(port)
        except PortTaken as exc:
            if len(tried) >= attempts:
                raise StackError(
                    component,
                    f"could not bind a port: {', '.join(map(str, tried))} on {host} were each taken "
                    f"before it could listen ({exc.problem})",
                    fix="something on this machine is taking fresh ports as fast as they are freed; "
                    "`ss -ltnp` shows who listens where",
                    log_tail=exc.log_tail,
                ) from exc


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds a TCP socket listening on ``port`` (read from /proc).

    Where there is no /proc, whether anything listens there at all.
    """
    proc = Path("/proc")
    if not (proc / "net" / "tcp").exists():
        return port_in_use(port)
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = list((proc / str(pid) / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target) in inodes:
            return True
    return False


def _listening_inodes(port: int) -> set[str]:
    """``socket:[inode]`` of every TCP socket in LISTEN state on ``port`` (IPv4 and IPv6)."""
    out = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                out.add(f"socket:[{fields[9]}]")
    return out
