"""The open model: requests arrive on a fixed schedule whatever the server does.

Request *i* of a generator is due at ``start + i / rate``. A free user takes the next ticket, sleeps
until it is due and sends; its latency is measured from the *intended* time, not from when it was
actually sent. If the server stalls, tickets pile up, the users that get free send them late, and
each of those late requests is charged the time it waited in the queue: a 2 s stall shows up as ~2 s
latencies for every request that should have been sent during it (coordinated omission corrected,
as wrk2 and HdrHistogram's ``recordValueWithExpectedInterval`` intend). A closed model, where each
user sends its next request only after the previous one returned, sends almost nothing during a
stall and so hides it.

Times come from one monotonic clock (``time.perf_counter``). Ticket times are computed from the
ticket index, never accumulated, so a long run does not drift.
"""

from __future__ import annotations

import math


class ArrivalSchedule:
    """Constant-rate ticket dispenser for one generator process (shared by all its users)."""

    def __init__(self, rate: float, start: float) -> None:
        if not rate > 0:
            raise ValueError(f"arrival rate must be positive (got {rate})")
        self.rate = rate
        self.start = start
        self.issued = 0

    def next(self) -> float:
        """Take the next ticket: the time (same clock as ``start``) its request is due."""
        due = self.start + self.issued / self.rate
        self.issued += 1
        return due

    def due_by(self, now: float) -> int:
        """How many tickets are due at ``now`` (issued or not)."""
        if now < self.start:
            return 0
        return math.floor((now - self.start) * self.rate) + 1

    def backlog(self, now: float) -> int:
        """Tickets due at ``now`` that no user has taken yet: every user was busy (server slow, or too
        few users for the rate). Their requests were never sent, so no latency exists for them."""
        return max(0, self.due_by(now) - self.issued)


def default_pool(rate: float) -> int:
    """Users for an open-model run: enough to keep sending while ~0.1 s worth of requests is in flight,
    at least 10. A free user waits for its ticket, so extra users cost memory, not load."""
    return max(10, math.ceil(rate / 10.0))
