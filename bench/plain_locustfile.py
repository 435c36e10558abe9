"""Plain Locust, as a user would write it without relay-gate: the baseline of
``bench/load_bench.py --compare-plain``.

One ``FastHttpUser`` sending ``GET /actions`` with a bearer key, so that N users send ``BENCH_RATE``
requests/s between them — the same target, rate, users and request as ``relay-gate load
--weights list=1``, without relay-gate's open model, HDR recording, body check or event hooks.

``BENCH_SCHEDULE`` picks how the users are paced:

- ``constant_throughput`` (default): Locust's ``constant_throughput(rate / users)``, as users write it.
  Each user keeps its own period, and the users drift into bursts (many requests leave together,
  then the process idles);
- ``even``: one schedule for all users, request *i* due at ``start + i / rate`` (what relay-gate's
  open model sends, minus its bookkeeping): the same arrival shape, so the difference in CPU is
  relay-gate's own work.

    BENCH_RATE=1000 BENCH_USERS=100 RELAY_API_KEY=... locust -f bench/plain_locustfile.py \\
        --headless -u 100 -r 100 -t 40s --host URL
"""

from __future__ import annotations

import os
import time

from locust import FastHttpUser, constant_throughput, task

RATE = float(os.environ.get("BENCH_RATE", "100"))
USERS = int(os.environ.get("BENCH_USERS", "10"))
SCHEDULE = os.environ.get("BENCH_SCHEDULE", "constant_throughput")
KEY = (os.environ.get("RELAY_API_KEY") or os.environ.get("RELAY_API_KEYS", "")).split(",")[0]


class _Even:
    """Request i is due at start + i / RATE, whichever user sends it: the wait until the next one."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.issued = 0

    def __call__(self, *_user: object) -> float:  # an instance: Locust calls it unbound
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        due = self.start + self.issued / RATE
        self.issued += 1
        return max(0.0, due - now)


class PlainActionsUser(FastHttpUser):
    wait_time = _Even() if SCHEDULE == "even" else constant_throughput(RATE / USERS)

    @task
    def list_actions(self) -> None:
        self.client.get("/actions", name="/actions", headers={"Authorization": f"Bearer {KEY}"})
