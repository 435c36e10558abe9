"""Micro-benchmark: CPU per sample of load/recorder.py, the part of the generator's request path that
records (three HDR histograms, outcome and status counts, the per-second series).

Feeds 60,000 synthetic samples (1,000 req/s for a minute, lognormal latencies, open-model lag) into a
fresh Recorder, finalises the series, and prints the best of five runs in µs of CPU per sample. To
compare two trees, run it with each on ``PYTHONPATH`` (docs/load.md, "Generator cost")::

    python bench/recorder_bench.py
    PYTHONPATH=/tmp/main python bench/recorder_bench.py   # a checkout of main
"""

from __future__ import annotations

import random
import time

import load.recorder
from load.recorder import Recorder

N = 60_000


def main() -> None:
    rng = random.Random(1)
    samples = []
    for i in range(N):
        latency = rng.lognormvariate(1.5, 1.0) / 1000
        lag = rng.random() / 1000
        samples.append((latency, latency + lag, lag, 1_800_000_000 + i / 1000))
    best = float("inf")
    for _ in range(5):
        rec = Recorder()
        t0 = time.process_time()
        for latency, corrected, lag, epoch in samples:
            rec.record(
                "list", status=200, outcome="ok", latency_s=latency, corrected_s=corrected, lag_s=lag,
                epoch_s=epoch,
            )  # fmt: skip
        rec.finalize(horizon=0)
        best = min(best, time.process_time() - t0)
    print(f"{load.recorder.__file__}: {best / N * 1e6:.2f} µs of CPU per sample (best of 5, {N:,} samples)")


if __name__ == "__main__":
    main()
