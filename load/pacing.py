"""Pacing inside a Locust process: open-model tickets (with in-flight bookkeeping) or closed-model
think time. Imports gevent: only the Locust subprocess imports this module.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import gevent

from load.openmodel import ArrivalSchedule


class Pacer:
    """One per generator process. ``rate`` None = closed model (users wait ``think`` between tasks)."""

    def __init__(self, rate: float | None, think: tuple[float, float]) -> None:
        self.rate = rate
        self.think = think
        self.schedule: ArrivalSchedule | None = None
        self.in_flight: dict[int, tuple[str, float]] = {}  # token -> (endpoint, intended)
        self._tokens = itertools.count()

    @property
    def open(self) -> bool:
        return self.rate is not None

    def start(self, now: float | None = None) -> None:
        self.in_flight.clear()
        if self.rate is not None:
            self.schedule = ArrivalSchedule(self.rate, time.perf_counter() if now is None else now)

    def wait_time(self) -> float:
        # open model: the wait happens in pace(), against the schedule, not between tasks
        return 0.0 if self.open else random.uniform(*self.think)  # noqa: S311 - jitter, not crypto

    def pace(self, endpoint: str) -> dict[str, Any]:
        """Block until this request's turn (open model) and return its Locust request context."""
        if self.schedule is None:
            return {}
        intended = self.schedule.next()
        delay = intended - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        sent = time.perf_counter()
        token = next(self._tokens)
        self.in_flight[token] = (endpoint, intended)
        return {"relay_token": token, "relay_intended": intended, "relay_sent": sent}

    def done(self, context: dict[str, Any]) -> tuple[float, float] | None:
        """(intended, sent) of a finished paced request, or None for an unpaced one."""
        token = context.get("relay_token")
        if token is None:
            return None
        self.in_flight.pop(token, None)
        return float(context["relay_intended"]), float(context["relay_sent"])

    def unfinished(self, now: float) -> list[tuple[str, float]]:
        """Requests in flight at ``now``: (endpoint, seconds since they were due)."""
        return [(endpoint, now - intended) for endpoint, intended in self.in_flight.values()]

    def backlog(self, now: float) -> int:
        return self.schedule.backlog(now) if self.schedule is not None else 0
