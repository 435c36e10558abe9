"""Fitting rate-limit bursts into one fixed window, and telling when a burst left it.

A fixed window must not make a burst flaky. Every burst therefore starts with one execute (the
*probe*) that reads X-RateLimit-Reset and X-RateLimit-Remaining: when the window is nearly over, or
a full quota is needed and the window is already in use, the burst waits for the reset and probes
again, so it runs inside one window from its first request. A session ledger remembers in which
window each workspace was last used, so consecutive scenarios pick a workspace that is still fresh
instead of waiting for the clock.

A replica whose Redis call times out fails open to its in-process limiter (by design), and on a
loaded machine that can happen to a parallel burst by accident: an answer counted outside the shared
window gives it away (its X-RateLimit-Reset is a token-refill time). Such a burst is noted in the
results and sent once more in a fresh window; a second one fails the scenario.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from features.support import skips
from features.support.rate_limit_support import (
    EPSILON_S,
    Burst,
    Hit,
    Ledger,
    answered,
    execute_hit,
    reset_kinds,
    same_window,
)
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, RateLimitPolicy


@dataclass
class WindowStart:
    """The probe that opened a burst: its credential, the answer and the burst's clock."""

    cred: Credential
    probe: Hit
    t0: float  # monotonic time the probe was sent
    realign: Callable[[], WindowStart] | None = None  # the same start, in a later window


def _room(policy: RateLimitPolicy, per_request_s: float, planned: int) -> float:
    """Seconds a burst of ``planned`` requests needs left in its window: twice the probe's pace,
    at least 1 s (noisy machines), at most half a window (waiting longer than that gains nothing)."""
    return min(policy.window_s / 2, max(1.0, 2 * per_request_s * planned))


def align(
    client: httpx.Client,
    creds: list[Credential],
    policy: RateLimitPolicy,
    ledger: Ledger,
    recorder: ExchangeRecorder,
    *,
    fresh: bool,
    planned: int,
) -> list[WindowStart]:
    """Probe each workspace once in a window with room for ``planned`` more requests (and, when
    ``fresh``, in which none of them was used before): wait for the next window until that holds."""
    client.get("/_stcore/health")  # open the connection, so the probe's time is an execute's
    waited, attempts = 0.0, 0
    while True:
        attempts += 1
        starts = []
        for cred in creds:
            t0 = time.monotonic()
            starts.append(
                WindowStart(
                    cred, answered(execute_hit(client, cred, ledger, endpoint=policy.endpoint, t0=t0)), t0
                )
            )
        one_window = all(same_window(s.probe, starts[0].probe) for s in starts)
        left = min(s.probe.reset or 0 for s in starts) - time.time()
        need = _room(policy, max(s.probe.elapsed_s for s in starts), planned)
        unused = all(s.probe.status == 200 and s.probe.remaining == policy.limit - 1 for s in starts)
        if one_window and left >= need and (unused or not fresh):
            recorder.note(
                "alignment",
                {
                    "waited_s": round(waited, 3),
                    "probes": attempts,
                    "window_left_s": round(left, 3),
                    "fresh": unused,
                    "workspaces": [c.workspace for c in creds],
                    "reset_kinds": reset_kinds([s.probe for s in starts]),
                },
            )
            return starts
        if attempts >= 3:
            pytest.fail(
                f"workspace(s) {[c.workspace for c in creds]} did not start a window "
                f"{'with the full quota ' if fresh else ''}after waiting {waited:.1f} s "
                f"(last probes: {[s.probe.row() for s in starts]}): is another client using them?"
            )
        wait = max(0.0, max(s.probe.reset or 0 for s in starts) - time.time()) + EPSILON_S
        if waited + wait > policy.max_wait_s:
            skips.precondition(
                f"the next rate-limit window starts in {wait:.1f} s, beyond rate_limit.max_wait_s"
            )
        time.sleep(wait)  # until the reset the server announced
        waited += wait


def use_up(client: httpx.Client, start: WindowStart, policy: RateLimitPolicy, ledger: Ledger) -> Burst:
    """Execute until the first 429 (at most quota + 1 requests after the probe)."""
    hits = [start.probe]
    while hits[-1].status != 429 and len(hits) <= policy.limit + 1:
        hits.append(answered(execute_hit(client, start.cred, ledger, endpoint=policy.endpoint, t0=start.t0)))
    assert hits[-1].status == 429, (
        f"workspace {start.cred.workspace}: {len(hits)} executes in one window, none refused "
        f"(quota {policy.limit}): {' '.join(str(h.status) for h in hits)}"
    )
    return Burst(start.cred, hits)


def _off_window(burst: Burst) -> tuple[list[Hit], list[Hit]]:
    """Answers not counted in the window the probe opened: (decided before that window ended —
    by a replica's in-process fallback, whose reset is a token refill time —, answered after it)."""
    first = burst.hits[0]
    window = first.reset or 0
    off = [h for h in burst.hits if h.reset is not None and not same_window(h, first)]
    return [h for h in off if h.received_at < window], [h for h in off if h.received_at >= window]


def assert_one_window(burst: Burst) -> None:
    fallback, late = _off_window(burst)
    window = burst.hits[0].reset
    assert not fallback, (
        f"{len(fallback)} execute(s) answered before window {window} ended carry X-RateLimit-Reset "
        f"{sorted({h.reset for h in fallback if h.reset is not None})}: a replica decided them on its "
        f"in-process fallback instead of the shared quota: {fallback[0].row()}"
    )
    assert not late, f"the burst ran past the end of window {window}: inconclusive {late[0].row()}"


def once_more_after_fallback(
    send: Callable[[WindowStart], Burst],
    start: WindowStart,
    policy: RateLimitPolicy,
    recorder: ExchangeRecorder,
) -> Burst:
    """Send a burst; if a replica decided part of it on its in-process fallback (its Redis call timed
    out: the relay fails open, by design, and a loaded machine can stall it past its Redis timeout), note it
    and send the burst once more in a fresh window. Twice in a row fails the scenario."""
    burst = send(start)
    fallback, _ = _off_window(burst)
    if fallback and start.realign is not None:
        recorder.note("fallback_during_first_burst", burst.evidence(policy))
        burst = send(start.realign())
    return burst
