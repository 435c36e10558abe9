"""A loopback HTTP/1.1 target that answers every request at once with a canned body (keep-alive).

For benchmarks of the load *generator*: the reference stack shares the two cores with the generator
and becomes the bottleneck long before a generator process does, so "how fast can one generator go"
is measured against this instead (bench/load_bench.py --target canned). The body is shaped like the
relay's (``actions``, ``preview_id`` and ``request_id`` keys, ~1.5 kB like GET /actions), so the
journeys' body checks pass and parse as much JSON as against the real service.

Run alone: ``python bench/canned_target.py [--port 0]`` prints its URL and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

BODY = json.dumps(
    {
        "actions": [
            {"action": f"example.action-{i}", "description": "x" * 120, "params": {"a": "string"}}
            for i in range(8)
        ],
        "preview_id": "p" * 32,
        "request_id": "r" * 32,
    }
).encode()
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: canned\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n"
)


class _Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + length:
                break
            self.buf = self.buf[end + 4 + length :]
            out.append(HEAD + BODY)
        if out:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int, ready: asyncio.Future[int] | None = None) -> None:
    server = await asyncio.get_running_loop().create_server(_Http, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready.set_result(bound)
    else:
        print(f"http://{host}:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
