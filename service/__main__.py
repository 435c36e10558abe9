"""``python -m service --host H --port P``: run the relay service under uvicorn.

Configuration comes from the environment (see service/config.py). A bad value stops the process with
exit status 2 and one line per problem naming the variable — never echoing its value.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from service import __version__
from service.config import Settings
from service.logs import configure_logging


def _explain(exc: ValidationError) -> str:
    lines = ["relay: invalid configuration:"]
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        var = str(err["loc"][0]).upper() if err["loc"] else "configuration"
        lines.append(f"  {var}: {err['msg']}" + (f" (at {loc})" if "." in loc else ""))
    return "\n".join(lines)


def load_settings() -> Settings | None:
    """Settings from the environment, or None after printing what is wrong (the caller exits 2)."""
    try:
        return Settings()
    except ValidationError as exc:
        print(_explain(exc), file=sys.stderr)
    except ValueError as exc:  # e.g. API_KEYS that is not JSON
        print(f"relay: invalid configuration: {exc}", file=sys.stderr)
    return None


def arg_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    return parser


def serve(app: Any, host: str, port: int) -> None:
    """Run ``app`` under uvicorn as production does: no Server header, our JSON access log only."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        server_header=False,
        date_header=True,
        access_log=False,
        log_config=None,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
    )


def main(argv: list[str] | None = None) -> int:
    args = arg_parser("python -m service", __doc__.splitlines()[0]).parse_args(argv)
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.secret_values)

    from service.app import create_app  # after logging, so start-up warnings are JSON too

    serve(create_app(settings), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
