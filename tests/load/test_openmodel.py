"""The arrival schedule: tickets at start + i / rate, no drift, backlog when nobody takes them."""

from __future__ import annotations

import pytest

from load.openmodel import ArrivalSchedule, default_pool


def test_tickets_are_evenly_spaced_from_the_start() -> None:
    s = ArrivalSchedule(rate=300.0, start=10.0)
    assert [s.next() for _ in range(4)] == pytest.approx(
        [10.0, 10.0 + 1 / 300, 10.0 + 2 / 300, 10.0 + 3 / 300]
    )


def test_ticket_times_do_not_drift_over_a_long_run() -> None:
    s = ArrivalSchedule(rate=300.0, start=0.0)
    for _ in range(180_000):  # ten minutes at 300 req/s
        last = s.next()
    assert last == pytest.approx(179_999 / 300.0, abs=1e-9)


def test_backlog_counts_due_tickets_nobody_took() -> None:
    s = ArrivalSchedule(rate=100.0, start=0.0)
    for _ in range(50):
        s.next()
    # at t = 2 s, 201 tickets were due (0 .. 2.00 s); 50 were taken
    assert s.due_by(2.0) == 201
    assert s.backlog(2.0) == 151
    assert s.backlog(-1.0) == 0


def test_rate_must_be_positive_and_the_pool_scales_with_it() -> None:
    with pytest.raises(ValueError, match="positive"):
        ArrivalSchedule(rate=0, start=0)
    assert default_pool(50) == 10 and default_pool(300) == 30
