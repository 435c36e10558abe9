"""Benchmark: what one worker report costs the master, and how many workers one master sustains.

A worker ships what it recorded since its previous report with Locust's report every 3 s
(load/distributed.py): per endpoint three encoded HDR histograms, outcome counts, statuses, and the
per-second buckets. The master receives it as a msgpack message (Locust's wire format), decodes it,
and adds it exactly into its own recorder (``Recorder.merge``: base64 + zlib + HDR add, the series
buckets, finalising seconds past the horizon). This script builds such reports the way a worker does
— a real :class:`load.recorder.Recorder` fed ``rate x 3 s`` samples of a long-tailed latency mix,
exported with ``export_delta`` and packed with msgpack — and times the master's side:

- ``unpack``: msgpack decode of the message;
- ``merge``: ``Recorder.merge`` of the delta (the exact HDR add and the series);
- per report, CPU seconds (``time.process_time``) over many reports into one master recorder.

From the per-report cost: workers one master sustains at one report per worker per 3 s at a CPU
budget of 50 % of one core = 0.5 x 3 s / cost. The master's other work per report (Locust's own
stats merge, heartbeats) is not included: the figure is the cost relay-gate adds.

Run: ``python bench/master_bench.py [--rates 100 500 2000] [--reports 300] [--out DIR]``. Takes under
a minute. Locust is not imported (msgpack is its wire codec, used directly).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import msgpack

from load.recorder import Recorder, classify

INTERVAL_S = 3.0  # Locust's WORKER_REPORT_INTERVAL
BUDGET = 0.5  # of one core
WEIGHTS = {"list": 4, "preview": 4, "execute": 2}


def synthetic_report(rate: float, rng: random.Random, start_epoch: float) -> bytes:
    """One worker's report of ``rate x INTERVAL_S`` requests, packed as Locust sends it."""
    rec = Recorder()
    n = int(rate * INTERVAL_S)
    names = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    for i in range(n):
        endpoint = rng.choices(names, weights)[0]
        base = 0.060 if endpoint == "execute" else 0.004
        latency = base * rng.lognormvariate(0, 0.6) + (0.5 * rng.random() if rng.random() < 0.001 else 0.0)
        lag = 0.0002 * rng.lognormvariate(0, 1.0)
        status = 500 if rng.random() < 0.001 else 200
        rec.record(
            endpoint,
            status=status,
            outcome=classify(status, failed=False),
            latency_s=latency,
            corrected_s=latency + lag,
            lag_s=lag,
            epoch_s=start_epoch + i / rate,
        )
    data: dict[str, Any] = {"relay": {"delta": rec.export_delta(), "generator": {"id": "w", "requests": n}}}
    return bytes(msgpack.dumps(("stats", data, "worker-host_0123456789abcdef")))


def measure(rate: float, reports: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    # distinct reports (a few dozen, reused round-robin): each worker's histograms differ
    packed = [synthetic_report(rate, rng, 1_800_000_000.0 + 3 * i) for i in range(min(reports, 40))]
    master = Recorder()
    unpack_s: list[float] = []
    merge_s: list[float] = []
    cpu0 = time.process_time()
    for i in range(reports):
        blob = packed[i % len(packed)]
        t0 = time.perf_counter()
        _type, data, _node = msgpack.loads(blob, raw=False, strict_map_key=False)
        t1 = time.perf_counter()
        master.merge(data["relay"]["delta"])
        t2 = time.perf_counter()
        unpack_s.append(t1 - t0)
        merge_s.append(t2 - t1)
    cpu = (time.process_time() - cpu0) / reports
    total = sum(sum(e.counts.values()) for e in master.endpoints.values())
    expected = reports * int(rate * INTERVAL_S)
    assert total == expected, f"merged {total} samples, expected {expected}"  # the add is exact
    per_report = statistics.median(u + m for u, m in zip(unpack_s, merge_s, strict=True))
    return {
        "rate_per_worker": rate,
        "samples_per_report": int(rate * INTERVAL_S),
        "report_bytes": round(statistics.mean(len(p) for p in packed)),
        "unpack_ms_median": round(1000 * statistics.median(unpack_s), 3),
        "merge_ms_median": round(1000 * statistics.median(merge_s), 3),
        "merge_ms_p99": round(1000 * sorted(merge_s)[int(0.99 * (len(merge_s) - 1))], 3),
        "per_report_ms_median": round(1000 * per_report, 3),
        "cpu_ms_per_report": round(1000 * cpu, 3),
        "workers_sustained": int(BUDGET * INTERVAL_S / cpu),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0, 2000.0], help="req/s per worker")
    ap.add_argument("--reports", type=int, default=300, help="reports merged per rate")
    ap.add_argument("--seed", type=int, default=51)
    ap.add_argument("--out", type=Path, default=None, help="write bench-master.json here")
    args = ap.parse_args()
    rows = [measure(rate, args.reports, args.seed) for rate in args.rates]
    print(
        f"master cost per worker report (median of {args.reports}; workers at {BUDGET:.0%} of one core, "
        f"one report per worker per {INTERVAL_S:g} s)"
    )
    print(
        f"{'req/s/worker':>12} {'samples':>8} {'bytes':>7} {'unpack ms':>9} {'merge ms':>9} "
        f"{'merge p99':>9} {'CPU ms':>8} {'workers':>8}"
    )
    for r in rows:
        print(
            f"{r['rate_per_worker']:>12g} {r['samples_per_report']:>8} {r['report_bytes']:>7} "
            f"{r['unpack_ms_median']:>9.3f} {r['merge_ms_median']:>9.3f} {r['merge_ms_p99']:>9.3f} "
            f"{r['cpu_ms_per_report']:>8.3f} {r['workers_sustained']:>8}"
        )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench-master.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
