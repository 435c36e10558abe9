"""Host an ASGI app under a real uvicorn server on a loopback port, on a thread of this process.

The stack runs the relay service as a subprocess; tests that must run a *variant* of it (one part
swapped for a defective one, a route that raises) use this instead: same uvicorn, same TCP, the app
object built in the test.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from gate.errors import StackError
from gate.stack.procs import free_port


class ThreadedServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise StackError("relay (threaded)", "uvicorn exited during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise StackError("relay (threaded)", f"not serving on {self.url} within {timeout:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
