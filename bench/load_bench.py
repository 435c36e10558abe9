"""Benchmark: can the load generator hold 300 req/s in the open model, flat in memory, for 10 minutes?

Runs ``relay-gate load --rate 300`` against the reference stack (started by the command, limiter on at
1,000,000 executes per 60 s per workspace, load spread over its three dev workspaces) and, while it
runs, samples the resident memory of every Locust process every few seconds. Reports:

1. achieved / requested arrival rate (goal: within ±2 %);
2. peak RSS of the Locust processes and its trend over the run (goal: < 200 MB and flat — the
   slope after the first minute, in MB per minute, should be ~0);
3. list/preview p99 and execute p95 at that rate (HDR, corrected for coordinated omission), with
   Locust's own figures beside them, and the SLO verdicts of load/slos.toml.

Run: ``python bench/load_bench.py [--rate 300] [--duration 600] [--workers 0] [--out DIR]``.
The figures are ratios and percentiles measured in one run on this machine, not assertions.

What the generator itself costs (bench/generator_cost.py, against a canned loopback target):

- ``--compare-plain [--rate 1000] [--duration 40] [--rounds 3]``: CPU seconds per 1,000 requests of
  plain Locust (``FastHttpUser`` + ``constant_throughput``, and the same user on one even schedule) and
  of ``relay-gate load``, side by side;
- ``--max-rate [--start-rate 1000] [--step 250] [--duration 20]``: the highest rate one generator
  process holds within ±2 % with CPU p90 < 90 %, stepping the rate up.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil


def locust_rss_mb(root: psutil.Process) -> dict[int, float]:
    out: dict[int, float] = {}
    for child in root.children(recursive=True):
        try:
            cmd = child.cmdline()
            if "locust" in cmd and "-m" in cmd:
                out[child.pid] = child.memory_info().rss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def slope_mb_per_min(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    xs = [t / 60.0 for t, _ in points]
    ys = [y for _, y in points]
    return float(statistics.linear_regression(xs, ys).slope)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--duration", type=int, default=600, help="seconds (default 600)")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--sample-every", type=float, default=5.0, help="RSS sampling interval, seconds")
    ap.add_argument("--out", type=Path, default=Path("results") / f"bench-load-{int(time.time())}")
    cost = ap.add_mutually_exclusive_group()
    cost.add_argument("--compare-plain", action="store_true", help="CPU per 1,000 requests vs plain Locust")
    cost.add_argument("--max-rate", action="store_true", help="highest rate one generator process holds")
    ap.add_argument("--rounds", type=int, default=3, help="--compare-plain: rounds of runs (default 3)")
    ap.add_argument("--start-rate", type=float, default=1000.0, help="--max-rate: first rate")
    ap.add_argument("--step", type=float, default=250.0, help="--max-rate: rate increment")
    args = ap.parse_args()
    if args.compare_plain or args.max_rate:
        return generator_cost_main(args)

    argv = [
        sys.executable, "-m", "gate.cli", "load", "--rate", f"{args.rate:g}",
        "--duration", f"{args.duration}s", "--workers", str(args.workers), "--results", str(args.out),
    ]  # fmt: skip
    print("running:", " ".join(argv[1:]), flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(argv)
    root = psutil.Process(proc.pid)
    samples: list[dict[str, Any]] = []
    while proc.poll() is None:
        rss = locust_rss_mb(root)
        if rss:
            samples.append(
                {"t": round(time.monotonic() - started, 1), "rss_mb": rss, "total_mb": sum(rss.values())}
            )
        time.sleep(args.sample_every)
    rc = proc.wait()

    doc = json.loads((args.out / "load" / "load.json").read_text())
    check = next(c for c in doc["validity"] if c["check"] == "achieved_rate")
    per_proc_peak = max((max(s["rss_mb"].values()) for s in samples), default=0.0)
    total = [(s["t"], s["total_mb"]) for s in samples]
    t_first = total[0][0] if total else 0.0
    after_warmup = [(t, y) for t, y in total if t - t_first >= 60]
    figures = {
        "rc": rc,
        "requested_rps": check["requested_rps"],
        "achieved_rps": check["achieved_rps"],
        "achieved_over_requested": round(check["achieved_rps"] / check["requested_rps"], 4),
        "rss_peak_mb_per_process": round(per_proc_peak, 1),
        "rss_peak_mb_all_locust": round(max((y for _, y in total), default=0.0), 1),
        "rss_first_minute_max_mb": round(max((y for t, y in total if t - t_first < 60), default=0.0), 1),
        "rss_last_minute_max_mb": round(
            max((y for t, y in total if t >= (total[-1][0] - 60 if total else 0)), default=0.0), 1
        ),
        "rss_slope_mb_per_min_after_first_minute": None
        if (slope := slope_mb_per_min(after_warmup)) is None
        else round(slope, 3),
        "slos": [
            {
                "endpoint": s["endpoint"],
                "slo": s["slo"],
                "measured": s.get("measured_ms", s.get("measured_pct")),
                "uncorrected_ms": s.get("uncorrected_ms"),
                "locust_ms": s.get("locust_ms"),
                "samples": s["samples"],
                "status": s["status"],
            }
            for s in doc["slos"]
        ],
        "generator_cpu_mean_pct": [
            round(statistics.fmean(g["cpu_samples"]), 1) for g in doc["generators"] if g["cpu_samples"]
        ],
        "verdict": doc["verdict"],
        "rss_samples": samples,
    }
    (args.out / "bench-load.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "rss_samples"}, indent=2))
    return 0


def generator_cost_main(args: argparse.Namespace) -> int:
    import generator_cost  # bench/ is the script's folder, so on sys.path

    # SIGTERM unwinds like Ctrl-C: the canned target and a running load are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    argv = sys.argv[1:]
    rate = args.rate if "--rate" in argv else 1000.0
    if args.compare_plain:
        duration = args.duration if "--duration" in argv else 40
        figures = generator_cost.compare_plain(rate=rate, duration=duration, rounds=args.rounds, out=args.out)
        name = "bench-compare-plain.json"
    else:
        duration = args.duration if "--duration" in argv else 20
        figures = generator_cost.max_rate(
            start=args.start_rate, step=args.step, duration=duration, out=args.out
        )
        name = "bench-max-rate.json"
    (args.out / name).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k not in ("rounds", "steps")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
