"""Plain Locust, as a user would write it without relay-gate: the baseline of
``bench/load_bench.py --compare-plain``.

One ``FastHttpUser`` sending ``GET /actions`` with a bearer key, paced by ``constant_throughput`` so
that N users send ``BENCH_RATE`` requests/s between them — the same target, rate, users and request
as ``relay-gate load --weights list=1``, without relay-gate's open model, HDR recording or body check.

    BENCH_RATE=1000 BENCH_USERS=100 RELAY_API_KEY=... locust -f bench/plain_locustfile.py \\
        --headless -u 100 -r 100 -t 40s --host URL
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant_throughput, task

RATE = float(os.environ.get("BENCH_RATE", "100"))
USERS = int(os.environ.get("BENCH_USERS", "10"))
KEY = (os.environ.get("RELAY_API_KEY") or os.environ.get("RELAY_API_KEYS", "")).split(",")[0]


class PlainActionsUser(FastHttpUser):
    wait_time = constant_throughput(RATE / USERS)

    @task
    def list_actions(self) -> None:
        self.client.get("/actions", name="/actions", headers={"Authorization": f"Bearer {KEY}"})
