"""``python -m tests.deployment.deploy DIR``: the reference service deployed on its own, as staging would
run it — not a gate stack.

Two replicas of ``python -m service`` (the service as shipped: no fault route, not gate.stack.relay) at the
seed's settings — 60 executes per 60 s per workspace, the strict header profile — on a Redis, a
PostgreSQL (migrated) and a webhook receiver of their own, plus a backup of its database written the
way a nightly ``relay-gate backup`` would. ``--defect NAME`` runs ``python -m gate.stack.relay --defect
NAME`` instead: the same deployment with one of the catalogue's defects.

It writes ``DIR/deployment.env`` (the variables a pipeline would hold: URL, keys, secrets, the
database URL, the receiver's token) and ``DIR/ready``, then runs until SIGTERM/SIGINT and stops
everything it started. The embedded Redis and PostgreSQL launchers of gate/ start the servers (they
are how this machine has a Redis and a PostgreSQL at all); nothing of the gate's stack or fixtures
is involved.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from gate.drill.backup import take_backup
from gate.stack.ports import free_port
from gate.stack.postgres.server import EmbeddedPostgres
from gate.stack.redis_server import EmbeddedRedis
from service.audit import migrate

SEED_LIMIT, SEED_WINDOW_S = 60, 60
READY_TIMEOUT_S = 60.0


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer 200 within {READY_TIMEOUT_S:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deployment.deploy", description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--defect", default=None, help="run this catalogue defect (gate/proof/catalogue.py)")
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args(argv)
    work: Path = args.dir.resolve()
    work.mkdir(parents=True, exist_ok=True)

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    procs: list[subprocess.Popen[bytes]] = []
    redis = EmbeddedRedis(work / "redis")
    postgres = EmbeddedPostgres(work / "pg")
    try:
        redis.start()
        postgres.start()
        postgres.create_database("relay")
        db_url = postgres.url("relay")
        migrate(db_url)

        keys = {name: secrets.token_urlsafe(24) for name in ("admin", "dev", "dev_a", "dev_b")}
        token = secrets.token_urlsafe(24)
        receiver_port = free_port()
        env_base = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_GATE_", "RATE_LIMIT"))}
        with open(work / "receiver.log", "wb") as log:
            receiver = subprocess.Popen(
                [sys.executable, "-m", "gate.stack.receiver", "--port", str(receiver_port)],
                env={**env_base, "RELAY_GATE_RECEIVER_TOKEN": token},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(receiver)
        receiver_url = f"http://127.0.0.1:{receiver_port}"
        _wait_ready(f"{receiver_url}/_receiver/health", receiver)

        service_env = {
            **env_base,
            "ADMIN_KEY": keys["admin"],
            "DEV_KEY": keys["dev"],
            "API_KEYS": json.dumps([
                {"key": keys["dev_a"], "role": "dev", "workspace": "ws-a"},
                {"key": keys["dev_b"], "role": "dev", "workspace": "ws-b"},
            ]),
            "ACTIONS_SIGNING_SECRET": secrets.token_hex(32),
            "PREVIEW_SECRET": secrets.token_hex(32),
            "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_EXEC_PER_MIN": str(SEED_LIMIT),
            "RATE_LIMIT_WINDOW_S": str(SEED_WINDOW_S),
            "SECURITY_HEADERS_PROFILE": "strict",
            "WEBHOOK_URL": f"{receiver_url}/hooks/relay",
            "REDIS_URL": redis.url,
            "DATABASE_URL": db_url,
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        module = ["gate.stack.relay", "--defect", args.defect] if args.defect else ["service"]
        ports = [free_port() for _ in range(args.replicas)]
        for i, port in enumerate(ports):
            with open(work / f"relay-{i}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", *module, "--host", "127.0.0.1", "--port", str(port)],
                        env=service_env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        for port, proc in zip(ports, procs[1:], strict=True):
            _wait_ready(f"http://127.0.0.1:{port}/_stcore/ready", proc)

        # last night's backup, as the deployment's scheduled `relay-gate backup` leaves it
        take_backup(db_url, work / "backups")

        values = {
            "STAGING_URL": f"http://127.0.0.1:{ports[0]}",
            "STG_REPLICA_URLS": " ".join(f"http://127.0.0.1:{p}" for p in ports),
            "STG_ADMIN_KEY": keys["admin"],
            "STG_DEV_KEY": keys["dev"],
            "STG_DEV_KEY_A": keys["dev_a"],
            "STG_DEV_KEY_B": keys["dev_b"],
            "STG_SIGNING_SECRET": service_env["ACTIONS_SIGNING_SECRET"],
            "STG_DATABASE_URL": db_url,
            "STG_RECEIVER_URL": receiver_url,
            "STG_RECEIVER_TOKEN": token,
        }
        env_file = work / "deployment.env"
        env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
        env_file.chmod(0o600)
        (work / "ready").write_text(str(os.getpid()))
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        return 0 if stopping else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        postgres.close()
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
