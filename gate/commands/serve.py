"""``relay-gate serve``: start the stack, describe it, keep it up until SIGINT/SIGTERM, tear it down."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from gate.errors import EXIT_INFRA
from gate.stack.reference import BACKENDS, Stack, StackConfig

DEFAULT_STACK_FILE = Path(".gate/stack.json")

HELP = """\
Starts Redis, PostgreSQL (database created, migrations applied), the gate's webhook receiver and the
relay service, prints where they are, writes the full description (URLs, keys, versions) as JSON to
--stack-file (mode 0600: it holds the keys), and runs until Ctrl-C or SIGTERM. Teardown ends every
process and removes every temp dir and the stack file; the exit status is then 130 (SIGINT) or 143
(SIGTERM), 5 when a process of the stack exited on its own.
"""


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="start the reference stack and keep it running", description=HELP)
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=os.environ.get("RELAY_GATE_BACKEND", "embedded"),
        help="embedded: bundled binaries (default); containers: testcontainers. A deployment is not "
        "served: give it to check/run/load/smoke with --target-url/--target-config",
    )
    p.add_argument("--replicas", type=int, default=1, help="relay processes sharing Redis and the DB (1-16)")
    p.add_argument("--stack-file", type=Path, default=DEFAULT_STACK_FILE, help="where to write the JSON")
    p.add_argument(
        "--rate-limit", type=int, default=10, help="executes per workspace per window (default 10)"
    )
    p.add_argument("--window", type=int, default=3, help="rate-limit window in seconds (default 3)")
    p.add_argument("--header-profile", choices=("strict", "seed"), default="strict")
    p.set_defaults(run=run)


def _summary(stack: Stack, stack_file: Path) -> str:
    d = stack.describe()
    lines = [
        f"relay-gate stack is up ({d['backend']}, {len(d['base_urls'])} replica(s))",
        *(f"  relay        {u}" for u in d["base_urls"]),
        f"  receiver     {d['receiver_url']}  (captures: {d['receiver_url']}/_receiver/captures)",
        f"  redis        {_safe(d['redis_url'])}   ({d['versions'].get('redis', '?')})",
        f"  postgres     {_safe(d['database_url'])}   ({d['versions'].get('postgres', '?')})",
        "  keys         "
        + ", ".join(f"{k['name']} ({k['role']}, workspace {k['workspace']})" for k in d["keys"]),
        f"  rate limit   {d['rate_limit']['limit']} executes / {d['rate_limit']['window_s']} s per workspace",
        f"key values, the signing secret, the receiver token and URLs with passwords are in {stack_file} "
        "(mode 0600)",
        "stop with Ctrl-C (or SIGTERM); everything started is torn down",
    ]
    return "\n".join(lines)


def _safe(url: str | None) -> str:
    """A URL without its password, for the terminal."""
    if not url:
        return "-"
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def run(args: argparse.Namespace) -> int:
    config = StackConfig(
        backend=args.backend,
        replicas=args.replicas,
        rate_limit=args.rate_limit,
        window_s=args.window,
        header_profile=args.header_profile,
    )

    # Ctrl-C and SIGTERM (gate/interrupts.py, for SIGINT too even when started with it ignored):
    # unwind through the finally below, which stops everything; later signals cannot cut it short
    stack = Stack(config, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        stack.start()
        stack.write_description(args.stack_file)
        print(_summary(stack, args.stack_file), flush=True)
        while True:
            dead = [
                p.name
                for p in [*stack.replicas, *([stack.receiver] if stack.receiver else [])]
                if not p.alive()
            ]
            if dead:
                print(f"relay-gate serve: {', '.join(dead)} exited on its own; tearing down", file=sys.stderr)
                return EXIT_INFRA
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping the stack ...", file=sys.stderr, flush=True)
        raise
    finally:
        stack.stop()
        args.stack_file.unlink(missing_ok=True)
