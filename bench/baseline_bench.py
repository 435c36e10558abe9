"""Benchmark: does ``relay-gate load --baseline`` stay quiet for the same build and flag a slower one?

Starts a one-replica reference stack (limiter on, out of the way) behind a small TCP proxy that can
hold each ``POST /actions/preview`` for a few milliseconds before passing it on — the stand-in for a
build whose preview got slower — and runs ``relay-gate load`` three times through the proxy:

0. a warm-up (``--warmup`` s, default 30, not compared): a fresh stack's first minute is slower;
1. the baseline (no delay);
2. the same build again, ``--baseline`` the first: goal, no significant change anywhere (exit 0);
3. the same build with ``--preview-delay-ms`` (default 5) added to preview, ``--baseline`` the first:
   goal, preview flagged as a regression (exit 3), list and execute not.

Every run goes through the proxy, so its own cost is in the baseline too. Reports, per comparison and
endpoint, p50/p95/p99 of both runs, the shift and its interval, and the finding; writes
``<out>/bench-baseline.json``.

Run: ``python bench/baseline_bench.py [--rate 100] [--duration 60] [--preview-delay-ms 5] [--warmup 30]
[--out DIR]``.
The figures are measured in one run on this machine, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gate.stack.reference import Stack, StackConfig


class DelayProxy:
    """Loopback TCP proxy; a request whose first bytes are ``POST /actions/preview`` waits
    ``delay_s`` before it is forwarded (keep-alive connections: each request checked as it comes)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay proxy did not start within 10 s")
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pump(reader, up_writer, delay=True), self._pump(up_reader, writer, delay=False)
        )

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, delay: bool) -> None:
        try:
            while data := await src.read(65536):
                if delay and self.delay_s and data.startswith(b"POST /actions/preview"):
                    await asyncio.sleep(self.delay_s)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()


def run_load(
    url: str,
    cfg: Path,
    env: dict[str, str],
    out: Path,
    args: argparse.Namespace,
    baseline: Path | None,
    *,
    duration: int | None = None,
) -> tuple[int, dict[str, Any]]:
    argv = [
        sys.executable, "-m", "gate.cli", "load", "--target-url", url, "--target-config", str(cfg),
        "--rate", f"{args.rate:g}", "--duration", f"{duration or args.duration}s", "--results", str(out),
    ]  # fmt: skip
    argv += ["--baseline", str(baseline)] if baseline else []
    print("running: relay-gate", " ".join(argv[3:]), flush=True)
    proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True)
    tail = "\n".join(proc.stdout.splitlines()[-16:])
    print(tail, flush=True)
    return proc.returncode, json.loads((out / "load" / "load.json").read_text())


def summary(code: int, doc: dict[str, Any]) -> dict[str, Any]:
    c = doc.get("comparison") or {}
    return {
        "exit_code": code,
        "verdict": {k: doc["verdict"].get(k) for k in ("outcome", "reasons")},
        "achieved_rps": doc["model"].get("achieved_rps"),
        "endpoints": {
            name: {
                "samples": e["samples"],
                "status": e["status"],
                "outcome": e["outcome"],
                "percentiles": e["percentiles"],
            }
            for name, e in (c.get("endpoints") or {}).items()
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=int, default=60, help="seconds per run (default 60)")
    ap.add_argument("--preview-delay-ms", type=float, default=5.0)
    ap.add_argument("--warmup", type=int, default=30, help="seconds of unrecorded load first (0: none)")
    ap.add_argument("--out", type=Path, default=Path("results") / f"bench-baseline-{int(time.time())}")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with Stack(StackConfig(replicas=1, rate_limit=1_000_000, window_s=60)) as stack:
        proxy = DelayProxy(int(stack.base_url.rsplit(":", 1)[1].split("/")[0]))
        url = proxy.start()
        cfg = args.out / "target.toml"
        cfg.write_text(
            '[credentials]\ndev = { env = "BB_DEV" }\n'
            'dev-a = { env = "BB_DEV_A", workspace = "ws-a" }\n'
            'dev-b = { env = "BB_DEV_B", workspace = "ws-b" }\n'
        )
        env = {
            "BB_DEV": stack.key("dev").key,
            "BB_DEV_A": stack.key("dev-ws-a").key,
            "BB_DEV_B": stack.key("dev-ws-b").key,
        }
        try:
            if args.warmup:  # a fresh relay, PostgreSQL and Redis: their first minute is not the build's
                run_load(url, cfg, env, args.out / "warmup", args, None, duration=args.warmup)
            base_code, base = run_load(url, cfg, env, args.out / "baseline", args, None)
            same_code, same = run_load(url, cfg, env, args.out / "same", args, args.out / "baseline")
            proxy.delay_s = args.preview_delay_ms / 1000.0
            slow_code, slow = run_load(url, cfg, env, args.out / "slower", args, args.out / "baseline")
        finally:
            proxy.stop()

    report = {
        "rate": args.rate,
        "duration_s": args.duration,
        "preview_delay_ms": args.preview_delay_ms,
        "warmup_s": args.warmup,
        "baseline": {"exit_code": base_code, "verdict": base["verdict"]},
        "same_build": summary(same_code, same),
        "preview_slower": summary(slow_code, slow),
    }
    (args.out / "bench-baseline.json").write_text(json.dumps(report, indent=2))
    for label in ("same_build", "preview_slower"):
        r = report[label]
        print(f"\n{label}: exit {r['exit_code']}")
        for name, e in r["endpoints"].items():
            p = e["percentiles"].get("p99") or {}
            print(
                f"  {name:8} p99 {p.get('baseline_ms')} -> {p.get('current_ms')} ms "
                f"(shift {p.get('shift_ms'):+} ms, {p.get('shift_pct')} %; interval {p.get('interval_ms')}) "
                f"{e['status']} [{e['outcome']}]"
            )
    print(f"\nwritten: {args.out / 'bench-baseline.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
