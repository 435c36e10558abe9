"""Benchmark: what the relay's middleware stack costs, and how many Redis commands a decision takes.

1. Requests/s of ``GET /actions`` through the full relay app (security headers, request context and
   metrics, body limit, auth, problem handlers) vs a bare one-route FastAPI app serving the same
   JSON, both under the same uvicorn settings, pinned to the same CPU, measured alternately in one
   run with wrk on the other CPU. Reports the ratio (goal >= 0.70).
2. Redis commands per execute decision: executes through the real app against a real redis-server,
   counted with INFO commandstats (goal: exactly 1, an EVALSHA).

Run: ``python bench/service_overhead.py [--seconds 10] [--rounds 3]`` (needs wrk: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from gate.stack.procs import free_port, wait_until
from gate.stack.receiver import Receiver
from gate.stack.redis_server import EmbeddedRedis
from tests.threaded import ThreadedServer

DEV = "bench-dev-key-0123456789"

# The same response model and payload as the relay's route, so the two differ only by the middleware
# stack, the auth dependency and the error handlers.
BARE_APP = """
from fastapi import FastAPI
from service.routes.actions import _ACTION_LIST, ActionList
app = FastAPI()
@app.get("/actions")
async def actions() -> ActionList:
    return _ACTION_LIST
"""


def _start(kind: str, port: int, env: dict[str, str], cwd: Path, access_log: bool) -> subprocess.Popen[bytes]:
    pin = ["taskset", "-c", "0", sys.executable]
    if kind == "relay":
        # the real entry point, as deployed: JSON logs, one access line per request at INFO
        argv = [*pin, "-m", "service", "--port", str(port)]
        env = {**env, "LOG_LEVEL": "INFO" if access_log else "WARNING"}
    else:
        argv = [
            *pin,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--no-server-header",
            "--log-level",
            "info" if access_log else "warning",
        ]
        if not access_log:
            argv.append("--no-access-log")
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wrk(url: str, seconds: int) -> float:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds}s",
            "-H",
            f"Authorization: Bearer {DEV}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or non2xx is not None:
        raise SystemExit(f"wrk run was not clean:\n{out}")
    return float(match.group(1))


def middleware_ratio(seconds: int, rounds: int, access_log: bool) -> None:
    repo = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    (tmp / "bare_app.py").write_text(BARE_APP)
    env = {**os.environ, "PYTHONPATH": f"{tmp}:{repo}", "DEV_KEY": DEV, "LOG_LEVEL": "WARNING"}
    ports = {"bare": free_port(), "relay": free_port()}
    procs = {name: _start(name, port, env, tmp, access_log) for name, port in ports.items()}
    try:
        for name, port in ports.items():
            wait_until(
                lambda p=port: (
                    httpx.get(
                        f"http://127.0.0.1:{p}/actions", headers={"Authorization": f"Bearer {DEV}"}
                    ).status_code
                    == 200
                ),
                timeout=30,
                component=name,
                what="GET /actions answers 200",
            )
        results: dict[str, list[float]] = {"bare": [], "relay": []}
        for _ in range(rounds):
            for name in ("bare", "relay"):
                _wrk(f"http://127.0.0.1:{ports[name]}/actions", 2)  # warm-up
                results[name].append(_wrk(f"http://127.0.0.1:{ports[name]}/actions", seconds))
        bare, full = statistics.median(results["bare"]), statistics.median(results["relay"])
        print(f"-- access log {'on' if access_log else 'off'} for both")
        print(f"GET /actions req/s  bare FastAPI: {bare:,.0f}  (runs: {[round(x) for x in results['bare']]})")
        print(
            f"GET /actions req/s  relay full:   {full:,.0f}  (runs: {[round(x) for x in results['relay']]})"
        )
        print(f"ratio relay/bare: {full / bare:.2f}  (goal >= 0.70)")
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def redis_commands_per_decision(n: int) -> None:
    from gate.stack.postgres.server import EmbeddedPostgres
    from service.app import create_app
    from service.audit import migrate
    from service.config import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    try:
        with EmbeddedRedis(tmp / "redis") as rds, EmbeddedPostgres(tmp / "pg") as pg, Receiver() as rx:
            pg.create_database("relay")
            migrate(pg.url("relay"))
            settings = Settings(
                _env_file=None,
                dev_key=DEV,
                redis_url=rds.url,
                database_url=pg.url("relay"),
                webhook_url=f"{rx.url}/hook",
                rate_limit_exec_per_min=n * 10,
            )
            body = {"action": "notify.send", "params": {"channel": "bench", "message": "x"}}
            with ThreadedServer(create_app(settings)) as srv, httpx.Client(base_url=srv.url) as c:
                c.post(
                    "/actions/execute", headers={"Authorization": f"Bearer {DEV}"}, json=body
                )  # loads script
                client = redis.Redis(port=rds.port)
                client.config_resetstat()
                for _ in range(n):
                    r = c.post("/actions/execute", headers={"Authorization": f"Bearer {DEV}"}, json=body)
                    r.raise_for_status()
                stats = client.info("commandstats")
                client.close()
            sent = {
                k.removeprefix("cmdstat_"): v["calls"]
                for k, v in stats.items()
                if k not in ("cmdstat_config", "cmdstat_info")
            }
            client_side = (
                sent.get("evalsha", 0)
                + sent.get("eval", 0)
                + sum(v for k, v in sent.items() if k not in ("evalsha", "eval", "incr", "pttl", "pexpire"))
            )
            per = client_side / n
            print(f"{n} executes -> commands sent by the relay: {client_side} ({per:.2f} per decision)")
            print(f"  commandstats (script internals included): {sent}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="length of each measured wrk run")
    ap.add_argument(
        "--rounds", type=int, default=3, help="alternating bare/relay rounds (median is reported)"
    )
    ap.add_argument("--executes", type=int, default=200, help="executes for the Redis command count")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    middleware_ratio(args.seconds, args.rounds, access_log=False)
    middleware_ratio(args.seconds, args.rounds, access_log=True)
    redis_commands_per_decision(args.executes)
    print(f"(bench took {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
