"""A switch in front of the target's Redis: a loopback TCP forwarder a scenario can cut and restore.

A replica started with ``REDIS_URL`` pointing here (:meth:`RedisSwitch.url_for`) talks to the real
Redis while the switch is on; :meth:`cut` closes every connection at once and closes each new one on
arrival (what a crashed or unreachable Redis looks like to a client: the connection drops), without
touching the Redis the other replicas share. :meth:`restore` lets connections through again.

Threads, not asyncio: the steps are synchronous, and a handful of connections is all a replica opens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

HOST = "127.0.0.1"
_BUFFER = 65536


class RedisSwitch:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` while on; refuse service while cut."""

    def __init__(self, upstream_host: str, upstream_port: int, *, on: bool = True) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._on = on
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name=f"redis-switch:{self.port}", daemon=True)
        self._acceptor.start()

    @classmethod
    def in_front_of(cls, redis_url: str, *, on: bool = True) -> RedisSwitch:
        parts = urlsplit(redis_url)
        if parts.hostname is None:
            raise ValueError("the Redis URL names no host")
        return cls(parts.hostname, parts.port or 6379, on=on)

    def url_for(self, redis_url: str) -> str:
        """``redis_url`` (its credentials and database kept) pointed at this switch."""
        parts = urlsplit(redis_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{HOST}:{self.port}" if userinfo else f"{HOST}:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    @property
    def on(self) -> bool:
        return self._on

    def cut(self) -> None:
        """Drop every connection now, and each new one as it arrives."""
        with self._lock:
            self._on = False
            doomed = list(self._open)
            self._open.clear()
        for s in doomed:
            _close(s)

    def restore(self) -> None:
        with self._lock:
            self._on = True

    def close(self) -> None:
        self._stopped.set()
        self.cut()
        _close(self._listener)
        self._acceptor.join(timeout=2)

    def __enter__(self) -> RedisSwitch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            if not self._on:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if not self._on:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    continue
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(_BUFFER):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
