"""``relay-gate load --master`` / ``--worker``: one load run over several hosts (docs/load.md,
"Workers on other hosts").

The master is ``relay-gate load`` as usual — target, stack, SLO spec, results and verdict — whose
Locust master listens on ``--master-bind-host:--master-bind-port`` for ``--expect-workers N`` workers
started elsewhere instead of starting them itself. A worker is a Locust worker process of
``load/locustfile.py`` (``relay-gate load --worker --master-host H``, or plain ``locust --worker -f
load/locustfile.py --master-host H``): it takes its keys and its TLS and proxy settings from the same
``--target-config`` as the master's (``[load] credentials`` or ``[credentials]``, ``[tls]``,
``[network]``) or from ``RELAY_API_KEY(S)`` and the ``RELAY_LOAD_*`` variables, its share of the rate
and the target from the master, and ships its HDR histograms to it (load/distributed.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any

from gate import interrupts
from gate.client.load_quota import load_credentials
from gate.client.target import Target
from gate.errors import UsageError
from gate.redacted_output import spawn
from gate.redaction import Redactor
from load import identity, settings, slos
from load.launch import LOCUSTFILE

DEFAULT_MASTER_PORT = 5557  # Locust's


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workers on other hosts (docs/load.md)")
    role = g.add_mutually_exclusive_group()
    role.add_argument(
        "--master",
        action="store_true",
        help="run the master only; --expect-workers N workers join from other hosts",
    )
    role.add_argument(
        "--worker",
        action="store_true",
        help="run one worker for the master at --master-host (keys and TLS from --target-config, or "
        "RELAY_API_KEY(S) and RELAY_LOAD_*)",
    )
    g.add_argument(
        "--expect-workers", type=int, default=None, metavar="N", help="--master: workers to wait for"
    )
    g.add_argument(
        "--master-bind-host",
        default="*",
        metavar="HOST",
        help="--master: interface to listen on (default *: all; the port is unauthenticated, so "
        "bind a private network's address)",
    )
    g.add_argument(
        "--master-bind-port",
        type=int,
        metavar="PORT",
        default=DEFAULT_MASTER_PORT,
        help=f"--master: port to listen on (default {DEFAULT_MASTER_PORT})",
    )
    g.add_argument(
        "--join-timeout",
        type=float,
        metavar="SECONDS",
        default=identity.DEFAULT_JOIN_TIMEOUT_S,
        help=f"--master: seconds the workers have to join (default {identity.DEFAULT_JOIN_TIMEOUT_S:g}); "
        "the run starts with those that did and is INVALID, naming them",
    )
    g.add_argument(
        "--master-host", default=None, metavar="HOST", help="--worker: the master's host name or address"
    )
    g.add_argument(
        "--master-port",
        type=int,
        default=DEFAULT_MASTER_PORT,
        metavar="PORT",
        help="--worker: the master's port",
    )
    g.add_argument(
        "--source-address",
        default=None,
        metavar="ADDRESS",
        help="--worker: send the requests from this local IP address (RELAY_LOAD_SOURCE_ADDRESS)",
    )


def master_bind(args: argparse.Namespace) -> tuple[str, int] | None:
    """(host, port) for :class:`load.launch.LocustPlan` with ``--master``; None without. Usage errors
    (exit 2) for options that do not go together."""
    if not args.master:
        if args.expect_workers is not None:
            raise UsageError("--expect-workers goes with --master")
        return None
    if args.expect_workers is None or not 1 <= args.expect_workers <= 1000:
        raise UsageError("--master needs --expect-workers N (1 to 1000): the workers it waits for")
    if args.workers:
        raise UsageError("--master waits for workers on other hosts; --workers starts them here: choose one")
    if not 1 <= args.master_bind_port <= 65535:
        raise UsageError("--master-bind-port must be a TCP port (1-65535)")
    if not 0 < args.join_timeout <= 3600:
        raise UsageError("--join-timeout must be more than 0 and at most 3600 seconds")
    if not (args.target_url or args.target_config):
        raise UsageError(
            "--master needs --target-url: its workers must reach the target and hold its keys, and the "
            "reference stack listens on this host's loopback with keys of its own"
        )
    return args.master_bind_host, args.master_bind_port


def run_worker(args: argparse.Namespace) -> int:
    """One Locust worker in the foreground; its exit status is ours (0 when its final measurements
    reached the master, 2 when the master refused it, 5 when it failed)."""
    if not args.master_host:
        raise UsageError("--worker needs --master-host: the address of the relay-gate load --master")
    if not 1 <= args.master_port <= 65535:
        raise UsageError("--master-port must be a TCP port (1-65535)")
    slos.load(args.slos)  # a bad spec is exit 2 here, before connecting (the master compares digests)
    env = dict(os.environ)
    if args.target_config:
        # the master's own target config: keys, TLS and proxies as it has them (a bad one is exit 2)
        target = Target.from_config(args.target_url, args.target_config)
        keys = [c.key for c in load_credentials(target)] or settings.api_keys(os.environ)
        if not keys:
            raise UsageError(
                f"--target-config {args.target_config} gives no API key whose variable is set: set the "
                f"variables its [credentials] name, or {settings.KEY_ENV} / {settings.KEYS_ENV}"
            )
        env.update({settings.KEYS_ENV: ",".join(keys), settings.KEY_ENV: ""})
        env.update(target.transport.locust_env(target.base_url))
        secrets = sorted({*keys, *target.secret_values()})
    else:
        secrets = keys = settings.require_keys(os.environ)
    if args.weights:
        env[settings.WEIGHTS_ENV] = settings.format_weights(settings.parse_weights(args.weights))
    argv = [
        sys.executable, "-P", "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
        "--master-host", args.master_host, "--master-port", str(args.master_port),
        "--slos", str((args.slos or slos.DEFAULT_PATH).resolve()),
    ]  # fmt: skip
    if args.source_address:
        argv += ["--source-address", args.source_address]
    print(f"relay-gate load: worker for the master at {args.master_host}:{args.master_port}", file=sys.stderr)
    # its output reaches ours redacted (a traceback may quote a key); SIGTERM lets it send its last data
    child = spawn(
        argv,
        redactor=Redactor(secrets),
        stdout=sys.stderr,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        status, _ = interrupts.wait_child(child.popen, forward=signal.SIGTERM)
    finally:
        child.finish()
    return status if status >= 0 else 128 - status


def describe(plan: Any) -> str:
    """The progress line's note on where the workers are."""
    if plan.master_bind is None:
        return f", {plan.workers} workers" if plan.workers else ""
    host, port = plan.master_bind
    return f", master on {host}:{port} waiting {plan.join_timeout_s:g} s for {plan.workers} workers"
