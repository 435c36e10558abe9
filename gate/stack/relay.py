"""``python -m gate.stack.relay``: the relay service as the gate runs it, optionally with a known defect.

This is ``python -m service`` (same settings, same uvicorn settings, same app) plus two routes the
service itself does not have: ``GET /_gate/fault`` raises an unhandled exception, so the header
scenarios can see what an unhandled 500 looks like, and ``GET /_gate/instance`` answers
``{"instance": "<RELAY_GATE_INSTANCE>"}``, the nonce the stack gave this process, so the stack adopts
the process it started and not whatever else answers on the port. ``--defect NAME`` builds the service
with one of the deliberate defects of gate/proof/catalogue.py instead — a test-only factory, never a service
setting — which is how the gate proves it can fail.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from gate.proof.catalogue import DEFECTS, build_app
from gate.stack.reference import FAULT_PATH
from gate.stack.servers import INSTANCE_ENV, INSTANCE_PATH
from service.__main__ import arg_parser, load_settings, serve
from service.logs import configure_logging


def with_instance_route(app: Any, instance: str) -> Any:
    """``app``, with :data:`INSTANCE_PATH` answered in front of it (pure ASGI).

    In front, not inside: a defect's wrapper must not be able to hide which process this is.
    """
    body = json.dumps({"instance": instance}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == INSTANCE_PATH:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("python -m gate.stack.relay", __doc__.splitlines()[0])
    parser.add_argument(
        "--defect", choices=sorted(DEFECTS), help="run the service with this deliberate defect"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.secret_values)
    app: Any = build_app(settings, args.defect, fault_path=FAULT_PATH)
    instance = os.environ.get(INSTANCE_ENV)
    if instance:
        app = with_instance_route(app, instance)
    serve(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
