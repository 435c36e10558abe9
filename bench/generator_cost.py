"""What the load generator costs: CPU per 1,000 requests against plain Locust, and the highest rate
one generator process holds. ``bench/load_bench.py --compare-plain`` / ``--max-rate`` run this.

Both measurements run against bench/canned_target.py (a loopback server answering every request at
once with a relay-shaped body), so the target is not the bottleneck, and use ``GET /actions`` only
(``--weights list=1``), the request plain Locust sends too.

- **compare-plain**: in one run, rounds of plain Locust (bench/plain_locustfile.py: ``FastHttpUser``
  paced by ``constant_throughput``), the same plain user paced on one even schedule
  (``BENCH_SCHEDULE=even``: the open model's arrival shape without its bookkeeping) and
  ``relay-gate load --rate R`` (open model, HDR, coordinated-omission correction), same target, rate,
  users and duration, each going first in turn. Also how often each Locust process blocked (voluntary
  context switches) per request: a wake-up from idle is most of what a request costs here. And the
  two plain runs against each other (``ratio_even_vs_plain``, and its user-time part): the same code,
  only its arrivals spread evenly, so what the open model's arrival shape alone costs. CPU is
  read from ``/proc/<pid>/stat`` of each process when it has exited but before it is reaped
  (``waitid(WNOWAIT)``), so it is the whole life of the process: the Locust process of plain Locust;
  for relay-gate the Locust process (``cutime``/``cstime`` of the CLI, which reaps it; plus a few
  ``git`` calls for provenance) and, apart, the CLI itself.
- **max-rate**: ``relay-gate load`` at rising rates; a rate is held when the achieved rate is within
  ±2 % of it and the generator's CPU p90 (load.json's 1 s samples) is below 90 %.

Timings on a shared 2-core machine are noisy: the figures are ratios within one run, never asserted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
KEY = "bench-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextmanager
def canned_target() -> Iterator[str]:
    """bench/canned_target.py on a free loopback port; its URL. Stopped (and reaped) on the way out."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "canned_target.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"canned target did not start (printed {url!r})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def users_for(rate: float) -> int:
    return max(10, math.ceil(rate / 10.0))  # load.openmodel.default_pool: what relay-gate load uses


def _finish(
    proc: subprocess.Popen[bytes], timeout: float, watch: Callable[[], None] | None = None
) -> dict[str, float]:
    """Wait for ``proc`` to exit (calling ``watch`` now and then), read its CPU seconds (own and
    reaped children's) and voluntary context switches while it is a zombie, then reap it."""
    deadline = time.monotonic() + timeout
    try:
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.args!r} did not end within {timeout:.0f} s")
            if watch is not None:
                watch()
            time.sleep(0.5)
    except BaseException:  # timed out, or the bench was interrupted: leave nothing running
        proc.terminate()  # relay-gate load stops its Locust on SIGTERM
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    stat = Path(f"/proc/{proc.pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) / CLK_TCK for x in fields[11:15])
    vcsw = _voluntary_switches(proc.pid)
    rc = proc.wait()
    return {
        "rc": rc,
        "cpu_s": utime + stime,
        "user_s": utime,
        "children_cpu_s": cutime + cstime,
        "children_user_s": cutime,
        "vcsw": vcsw,
    }


def _voluntary_switches(pid: int) -> int:
    """How often the process blocked (gave up the CPU to wait): once per wake-up from idle."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_plain(
    url: str, rate: float, duration: int, out: Path, *, schedule: str = "constant_throughput"
) -> dict[str, Any]:
    users = users_for(rate)
    stats = out / "plain-stats"
    argv = [
        sys.executable, "-P", "-m", "locust", "-f", str(BENCH / "plain_locustfile.py"),
        "--headless", "--only-summary", "--host", url, "-u", str(users), "-r", str(min(users, 100)),
        "-t", f"{duration}s", "--stop-timeout", "0", "--json-file", str(stats), "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_RATE": f"{rate:g}", "BENCH_USERS": str(users), "RELAY_API_KEY": KEY}
    env["BENCH_SCHEDULE"] = schedule
    with open(out / "plain.log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        cpu = _finish(proc, duration + 60)
    entries = json.loads((out / "plain-stats.json").read_text())
    requests = sum(int(e["num_requests"]) for e in entries)
    return {
        "kind": "plain" if schedule == "constant_throughput" else f"plain-{schedule}",
        "requests": requests,
        "achieved_rps": round(requests / duration, 1),
        "locust_cpu_s": round(cpu["cpu_s"], 2),
        "locust_user_s": round(cpu["user_s"], 2),
        "command_cpu_s": round(cpu["cpu_s"], 2),
        "blocked_per_request": round(cpu["vcsw"] / requests, 3) if requests else None,
    }


def run_plain_even(url: str, rate: float, duration: int, out: Path) -> dict[str, Any]:
    return run_plain(url, rate, duration, out, schedule="even")


def run_relay_gate(url: str, rate: float, duration: int, out: Path) -> dict[str, Any]:
    results = out / "relay-gate"
    argv = [
        sys.executable, "-P", "-m", "gate.cli", "load", "--target-url", url, "--rate", f"{rate:g}",
        "--weights", "list=1", "--duration", f"{duration}s", "--results", str(results),
    ]  # fmt: skip
    env = {**os.environ, "RELAY_API_KEY": KEY}
    env.pop("RELAY_API_KEYS", None)
    switches = {"locust": 0}

    def watch() -> None:  # Locust is the CLI's child, reaped by it: read its switches while it runs
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children():
                if "locust" in child.cmdline():
                    switches["locust"] = child.num_ctx_switches().voluntary

    with open(out / "relay-gate.log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        cpu = _finish(proc, duration + 120, watch)
    if cpu["rc"] in (2, 5):
        raise RuntimeError(f"relay-gate load exited {cpu['rc']}: read {out / 'relay-gate.log'}")
    doc = json.loads((results / "load" / "load.json").read_text())
    gen = doc["generators"][0]
    requests = sum(int(ep["requests"]) for ep in doc["endpoints"].values())
    return {
        "kind": "relay-gate",
        "rc": cpu["rc"],
        "requests": requests,
        "achieved_rps": gen["achieved_rps"],
        "cpu_p90_pct": p90(gen["cpu_samples"]),
        "locust_cpu_s": round(cpu["children_cpu_s"], 2),
        "locust_user_s": round(cpu["children_user_s"], 2),
        "cli_cpu_s": round(cpu["cpu_s"], 2),
        "command_cpu_s": round(cpu["cpu_s"] + cpu["children_cpu_s"], 2),
        # read up to 0.5 s before Locust ended: a slight undercount
        "blocked_per_request": round(switches["locust"] / requests, 3) if requests else None,
    }


def p90(samples: list[float]) -> float | None:
    """The generator_cpu check's p90 (load/verdict.py)."""
    if not samples:
        return None
    ordered = sorted(samples)
    return float(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)])


def per_1000(run: dict[str, Any], key: str) -> float:
    return round(run[key] / run["requests"] * 1000.0, 4) if run["requests"] else math.nan


def compare_plain(*, rate: float, duration: int, rounds: int, out: Path) -> dict[str, Any]:
    """Rounds of plain Locust and relay-gate load, side by side in one run."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with canned_target() as url:
        for i in range(rounds):
            kinds = [run_plain, run_plain_even, run_relay_gate]
            order = kinds[i % 3 :] + kinds[: i % 3]  # each goes first once in three rounds
            pair = {}
            for fn in order:
                where = out / f"round-{i}-{fn.__name__}"
                where.mkdir(parents=True, exist_ok=True)
                r = fn(url, rate, duration, where)
                r["locust_cpu_s_per_1000"] = per_1000(r, "locust_cpu_s")
                r["command_cpu_s_per_1000"] = per_1000(r, "command_cpu_s")
                r["locust_user_s_per_1000"] = per_1000(r, "locust_user_s")
                print(json.dumps({"round": i, **r}), flush=True)
                pair[r["kind"]] = r
            plain, even, gate = pair["plain"], pair["plain-even"], pair["relay-gate"]
            rows.append(
                {
                    "round": i,
                    "plain": plain,
                    "plain_even": even,
                    "relay_gate": gate,
                    "ratio_locust": round(gate["locust_cpu_s_per_1000"] / plain["locust_cpu_s_per_1000"], 3),
                    "ratio_command": round(
                        gate["command_cpu_s_per_1000"] / plain["command_cpu_s_per_1000"], 3
                    ),
                    "ratio_locust_vs_even": round(
                        gate["locust_cpu_s_per_1000"] / even["locust_cpu_s_per_1000"], 3
                    ),
                    # the same plain code, only its arrivals spread evenly: what the shape alone costs
                    "ratio_even_vs_plain": round(
                        even["locust_cpu_s_per_1000"] / plain["locust_cpu_s_per_1000"], 3
                    ),
                    "ratio_even_vs_plain_user": round(
                        even["locust_user_s_per_1000"] / plain["locust_user_s_per_1000"], 3
                    ),
                }
            )
    return {
        "target": "canned (bench/canned_target.py)",
        "rate": rate,
        "duration_s": duration,
        "users": users_for(rate),
        "rounds": rows,
        "ratio_locust_median": statistics.median(r["ratio_locust"] for r in rows),
        "ratio_command_median": statistics.median(r["ratio_command"] for r in rows),
        "ratio_locust_vs_even_median": statistics.median(r["ratio_locust_vs_even"] for r in rows),
        "ratio_even_vs_plain_median": statistics.median(r["ratio_even_vs_plain"] for r in rows),
        "ratio_even_vs_plain_user_median": statistics.median(r["ratio_even_vs_plain_user"] for r in rows),
        "blocked_per_request_median": {
            kind: statistics.median(r[kind]["blocked_per_request"] or 0.0 for r in rows)
            for kind in ("plain", "plain_even", "relay_gate")
        },
    }


def max_rate(*, start: float, step: float, duration: int, out: Path, limit: float = 20_000) -> dict[str, Any]:
    """Step the rate up until one generator process no longer holds it (±2 %, CPU p90 < 90 %)."""
    out.mkdir(parents=True, exist_ok=True)
    steps: list[dict[str, Any]] = []
    held = None
    with canned_target() as url:
        rate = start
        while rate <= limit:
            where = out / f"rate-{rate:g}"
            where.mkdir(parents=True, exist_ok=True)
            r = run_relay_gate(url, rate, duration, where)
            off_pct = (r["achieved_rps"] / rate - 1.0) * 100.0
            r.update(rate=rate, off_pct=round(off_pct, 2))
            r["held"] = abs(off_pct) <= 2.0 and r["cpu_p90_pct"] is not None and r["cpu_p90_pct"] < 90.0
            print(json.dumps(r), flush=True)
            steps.append(r)
            if not r["held"]:
                break
            held = rate
            rate += step
    return {"target": "canned", "duration_s": duration, "highest_held_rps": held, "steps": steps}
