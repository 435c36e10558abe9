"""``python -m gate.harness``: the relay service as the gate runs it, optionally with a known defect.

This is ``python -m service`` (same settings, same uvicorn settings, same app) plus one route the
service itself does not have: ``GET /_gate/fault`` raises an unhandled exception, so the header
scenarios can see what an unhandled 500 looks like. ``--defect NAME`` builds the service with one of
the deliberate defects of gate/defects.py instead — a test-only factory, never a service setting —
which is how the gate proves it can fail.
"""

from __future__ import annotations

import sys
from typing import Any

from gate.defects import DEFECTS, build_app
from gate.stack import FAULT_PATH
from service.__main__ import arg_parser, load_settings, serve
from service.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("python -m gate.harness", __doc__.splitlines()[0])
    parser.add_argument(
        "--defect", choices=sorted(DEFECTS), help="run the service with this deliberate defect"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.secret_values)
    app: Any = build_app(settings, args.defect, fault_path=FAULT_PATH)
    serve(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
