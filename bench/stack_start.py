"""Benchmark: stack cold start to ready (Redis, PostgreSQL + migrations, receiver, relay answering
/_stcore/ready), median of N starts per backend, with the per-step split.

Run: ``python bench/stack_start.py [--runs 5] [--backends embedded containers]``.
The containers backend needs a Docker engine and the images (see .ci/build-images.sh).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from gate.stack.reference import Stack, StackConfig

STEP = re.compile(r"^\s+(.+): ready in ([\d.]+) s$")


def one_start(backend: str) -> tuple[float, dict[str, float]]:
    steps: dict[str, float] = {}

    def progress(msg: str) -> None:
        m = STEP.match(msg)
        if m:
            steps[m.group(1).split(" (")[0].split(",")[0]] = float(m.group(2))

    t0 = time.perf_counter()
    stack = Stack(StackConfig(backend=backend), progress=progress)  # type: ignore[arg-type]
    stack.start()
    elapsed = time.perf_counter() - t0
    stack.stop()
    return elapsed, steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["embedded", "containers"])
    args = ap.parse_args()
    for backend in args.backends:
        if backend == "containers":
            from gate.stack.containers.backend import docker_available

            ok, why = docker_available()
            if not ok:
                print(f"containers: skipped ({why})")
                continue
        runs = [one_start(backend) for _ in range(args.runs)]
        totals = [t for t, _ in runs]
        print(
            f"{backend}: cold start to ready, median of {args.runs}: {statistics.median(totals):.2f} s "
            f"(runs: {', '.join(f'{t:.2f}' for t in totals)})"
        )
        for step in runs[0][1]:
            med = statistics.median(r[1].get(step, 0.0) for r in runs)
            print(f"    {step:<16} median {med:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
