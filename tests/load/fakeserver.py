"""Tiny loopback HTTP targets for Locust runs that need no stack: one that answers every request
with a body each journey accepts, and one that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = json.dumps({"actions": [], "preview_id": "p" * 16, "request_id": "r" * 16}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: Iterator[bytes] = itertools.repeat(BODY)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = next(self.bodies)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def answering(bodies: list[bytes] | None = None) -> Iterator[str]:
    """Answers 200 to everything, with ``BODY`` or else ``bodies`` in turn."""
    handler = type("Handler", (_Handler,), {"bodies": itertools.cycle(bodies or [BODY])})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """Listens (the kernel completes connections) but never reads or answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
