"""The gate's webhook receiver: captures every delivery byte for byte, answers as it is told.

Any request outside ``/_receiver/`` is a delivery: its method, path, headers, raw body and arrival
time (``received_at``, Unix seconds on the receiver's clock, taken when the request head was read)
are kept (the newest 10,000), and it is answered with the next scripted reply or the default 200.
Deliveries need no credentials. Test steps read and steer it over HTTP, so the same steps work
whether the receiver runs in the stack, in a test's thread, or beside a staging deployment::

    GET    /_receiver/health                      -> {"ok": true, "instance": "<nonce>"}  (open)
    GET    /_receiver/captures?after=SEQ          -> {"captures": [...], "last_seq": N}
    DELETE /_receiver/captures                    -> forget everything captured
    POST   /_receiver/script  {"responses": [REPLY, ...], "default": REPLY}

The script is a queue: each delivery takes the next reply, and once it is empty every delivery gets
``default`` (a 200 unless set). A REPLY is an object, every key optional::

    {"status": 307,                              the status to answer (default 200)
     "headers": {"Location": "/elsewhere"},      headers to add: a redirect, a Retry-After, ...
     "delay_s": 3.5,                             wait this long before answering at all
     "trickle_s": 4.5,                           send the status line, then one header byte every
                                                 50 ms for this long, then the rest: a slow-loris
                                                 answer that no per-read timeout ever cuts off
     "drop": true}                               close the connection without any answer

So a delivery scenario can answer with a redirect, fail N times then succeed (N replies, then the
default), answer after the sender's timeout, or drop the connection; the arrival times of the
attempts it captured show how long the sender waited between them. A scenario that scripts
failures posts an empty script afterwards, so the receiver answers 200 again.

Every control route but health carries ``Authorization: Bearer <token>``, else it is answered 401
with a ``WWW-Authenticate: Bearer`` challenge: captures hold signed deliveries, and the script decides
what the relay under test sees, so neither is for whoever else can reach the port. The token is made
per run (the stack makes one; see ``receiver_token`` in its description) and reaches the process in
``RELAY_GATE_RECEIVER_TOKEN``, never on the command line, where ``ps`` would show it. ``instance``
names this receiver process (``RELAY_GATE_INSTANCE``, random when unset): the stack adopts a receiver
only when health answers with the instance it started.

Run standalone::

    export RELAY_GATE_RECEIVER_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
    python -m gate.stack.receiver --port 8025
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gate.client.receiver import CONTROL, TOKEN_ENV, Capture

MAX_CAPTURES = 10_000
MAX_BODY = 1 << 20
INSTANCE_ENV = "RELAY_GATE_INSTANCE"
MIN_TOKEN_CHARS = 16
_CHALLENGE = 'Bearer realm="relay-gate receiver"'


def new_token() -> str:
    """A control token for one run of a receiver."""
    return secrets.token_urlsafe(32)


@dataclass
class _Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: list[tuple[str, str]] = field(default_factory=list)
    trickle_s: float = 0.0
    drop: bool = False

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> _Reply:
        unknown = set(doc) - {"status", "delay_s", "headers", "trickle_s", "drop"}
        if unknown:
            raise ValueError(f"unknown reply key(s) {sorted(unknown)}")
        headers = doc.get("headers") or {}
        pairs = headers.items() if isinstance(headers, dict) else headers
        return cls(
            status=int(doc.get("status", 200)),
            delay_s=float(doc.get("delay_s", 0.0)),
            headers=[(str(k), str(v)) for k, v in pairs],
            trickle_s=float(doc.get("trickle_s", 0.0)),
            drop=bool(doc.get("drop", False)),
        )


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    captures: collections.deque[Capture] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_CAPTURES)
    )
    seq: int = 0
    script: collections.deque[_Reply] = field(default_factory=collections.deque)
    default: _Reply = field(default_factory=_Reply)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # captures are the log; stderr noise would drown the stack's logs

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, doc: Any, headers: dict[str, str] | list[tuple[str, str]] | None = None
    ) -> None:
        # 1xx, 204 and 304 have no body (RFC 9110 §6.4.1): one sent anyway would be read as the start
        # of the next response on a kept-alive connection
        data = b"" if status < 200 or status in (204, 304) else json.dumps(doc).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        pairs = headers.items() if isinstance(headers, dict) else headers or []
        for name, value in pairs:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _trickle(self, reply: _Reply) -> None:
        """The status line, then one byte of a header every 50 ms for ``trickle_s``, then the rest."""
        self.close_connection = True
        self.wfile.write(f"HTTP/1.1 {reply.status} Trickled\r\nX-Trickle: ".encode())
        deadline = time.monotonic() + reply.trickle_s
        while time.monotonic() < deadline:
            self.wfile.write(b"a")
            self.wfile.flush()
            time.sleep(0.05)
        tail = "".join(f"{k}: {v}\r\n" for k, v in reply.headers)
        self.wfile.write(f"\r\n{tail}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())

    def _authorized(self) -> bool:
        """Whether the request carries this receiver's token (compared in constant time)."""
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            self._refuse(_CHALLENGE, "this control route needs Authorization: Bearer <receiver token>")
            return False
        if not hmac.compare_digest(given.strip().encode(), self.server.token.encode()):
            self._refuse(f'{_CHALLENGE}, error="invalid_token"', "the receiver token is not this receiver's")
            return False
        return True

    def _refuse(self, challenge: str, why: str) -> None:
        # The body (a script, say) is left unread: close the connection rather than parse it as a request.
        self.close_connection = True
        self._send_json(401, {"error": why}, {"WWW-Authenticate": challenge, "Connection": "close"})

    def _control(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        route = parts.path[len(CONTROL) :]
        if route == "health" and method == "GET":
            self._send_json(200, {"ok": True, "instance": self.server.instance})
        elif not self._authorized():
            return
        elif route == "captures" and method == "GET":
            after = int(parse_qs(parts.query).get("after", ["0"])[0])
            with state.lock:
                caps = [c.to_json() for c in state.captures if c.seq > after]
                last = state.seq
            self._send_json(200, {"captures": caps, "last_seq": last})
        elif route == "captures" and method == "DELETE":
            with state.lock:
                state.captures.clear()
            self._send_json(200, {"ok": True})
        elif route == "script" and method == "POST":
            try:
                doc = json.loads(self._read_body() or b"{}")
                script = collections.deque(_Reply.from_json(r) for r in doc.get("responses", []))
                default = _Reply.from_json(doc.get("default", {}))
            except (ValueError, TypeError, AttributeError) as exc:
                self._send_json(400, {"error": f"not a script: {exc}"})
                return
            with state.lock:
                state.script, state.default = script, default
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": "unknown receiver control route"})

    def _handle(self, method: str) -> None:
        if self.path.startswith(CONTROL):
            self._control(method)
            return
        arrived = time.time()
        try:
            body = self._read_body()
        except ValueError:
            self._send_json(413, {"error": "too large"})
            return
        state = self.server.state
        with state.lock:
            state.seq += 1
            state.captures.append(
                Capture(state.seq, method, self.path, list(self.headers.items()), body, arrived)
            )
            reply = state.script.popleft() if state.script else state.default
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        if reply.drop:
            self.close_connection = True  # no answer at all: the sender sees the connection close
            return
        # the sender may have given up waiting (a timeout test): then there is nobody to answer
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if reply.trickle_s > 0:
                self._trickle(reply)
            else:
                self._send_json(reply.status, {"received": True}, reply.headers)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], *, token: str, instance: str) -> None:
        super().__init__(addr, _Handler)
        self.state = _State()
        self.token = token
        self.instance = instance


class Receiver:
    """A receiver on a thread of this process (tests); ``python -m gate.stack.receiver`` runs the same server.

    ``token`` is what its control routes require (made up when omitted; read it from :attr:`token`).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None, instance: str | None = None
    ) -> None:
        self.token = token or new_token()
        self.instance = instance or secrets.token_hex(16)
        self._server = _Server((host, port), token=self.token, instance=self.instance)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    prog = "python -m gate.stack.receiver"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if len(token) < MIN_TOKEN_CHARS:
        print(
            f"{prog}: {TOKEN_ENV} must hold the bearer token its control routes require "
            f"(at least {MIN_TOKEN_CHARS} characters; it is {'too short' if token else 'unset'}). Make one:\n"
            f"  export {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            file=sys.stderr,
        )
        return 2
    instance = os.environ.get(INSTANCE_ENV) or secrets.token_hex(16)
    try:
        server = _Server((args.host, args.port), token=token, instance=instance)
    except OSError as exc:
        print(f"{prog}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
