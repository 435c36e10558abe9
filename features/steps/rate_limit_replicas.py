"""Steps for features/rate_limit.feature that spread executes over replicas: a parallel burst over every
replica sharing one quota, and a replica started with rate limiting switched off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from pytest_bdd import given, parsers, then, when

from features.support import skips
from features.support.rate_limit_support import Burst, Ledger, parallel
from features.support.rate_limit_windows import WindowStart, assert_one_window, once_more_after_fallback
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, RateLimitPolicy, Target

# -- concurrency -----------------------------------------------------------------------------------


@when(
    parsers.parse("the workspace sends {factor:d} x quota executes at once, spread over every replica"),
    target_fixture="rl_burst",
)
def _(
    target: Target,
    rl_start: WindowStart,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
    factor: int,
) -> Burst:
    def send(start: WindowStart) -> Burst:
        hits = asyncio.run(
            parallel(
                recorder,
                start.cred,
                target.base_urls,
                factor * rl_policy.limit,
                endpoint=rl_policy.endpoint,
                timeout_s=target.request_timeout_s,
                t0=start.t0,
                ledger=rl_ledger,
            )
        )
        return Burst(start.cred, [start.probe, *hits])

    burst = once_more_after_fallback(send, rl_start, rl_policy, recorder)
    hits = burst.hits[1:]
    per_replica = {
        u: {
            "admitted": sum(1 for h in burst.admitted if h.replica == u),
            "refused": sum(1 for h in burst.refused if h.replica == u),
        }
        for u in target.base_urls
    }
    recorder.note(
        "parallel_burst",
        burst.evidence(
            rl_policy,
            per_replica=per_replica,
            duration_s=round(max(h.received_at for h in hits) - hits[0].sent_at, 3),
        ),
    )
    return burst


@then("exactly the quota of executes is admitted in that window across the replicas")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    odd = [h.row() for h in rl_burst.hits if h.status not in (200, 429)]
    assert not odd, f"executes answered neither 200 nor 429: {odd[:5]}"
    assert_one_window(rl_burst)
    assert len(rl_burst.admitted) == rl_policy.limit, (
        f"{len(rl_burst.admitted)} of {len(rl_burst.hits)} parallel executes admitted in one window over "
        f"{len({h.replica for h in rl_burst.hits})} replica(s); quota {rl_policy.limit}"
    )


# -- rate limiting switched off --------------------------------------------------------------------


@pytest.fixture
def rl_unlimited_replica(target: Target) -> Iterator[str]:
    if target.stack is None or not target.controllable:
        skips.not_applicable(
            f"{target.name}: needs control of the target to start a replica with other settings"
        )
    with target.stack.extra_replica({"RATE_LIMIT_ENABLED": "false"}) as url:
        yield url


@given("a replica of the target running with RATE_LIMIT_ENABLED=false", target_fixture="rl_unlimited_url")
def _(rl_unlimited_replica: str) -> str:
    return rl_unlimited_replica


@when(
    parsers.parse("a developer sends {factor:d} x quota executes at once to that replica"),
    target_fixture="rl_unlimited_burst",
)
def _(
    rl_unlimited_url: str,
    dev: Credential,
    target: Target,
    rl_policy: RateLimitPolicy,
    recorder: ExchangeRecorder,
    factor: int,
) -> Burst:
    with recorder.client(rl_unlimited_url, timeout=target.request_timeout_s) as c:
        c.get("/_stcore/health")
    hits = asyncio.run(
        parallel(
            recorder,
            dev,
            [rl_unlimited_url],
            factor * rl_policy.limit,
            endpoint=rl_policy.endpoint,
            timeout_s=target.request_timeout_s,
            t0=time.monotonic(),
        )
    )
    burst = Burst(dev, hits)
    duration = max(h.received_at for h in hits) - min(h.sent_at for h in hits)
    recorder.note(
        "burst_rate_limit_disabled",
        burst.evidence(rl_policy, setting="RATE_LIMIT_ENABLED=false", duration_s=round(duration, 3)),
    )
    return burst


@then("none of them is refused with 429")
def _(rl_unlimited_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    hits = rl_unlimited_burst.hits
    assert len(hits) > 2 * rl_policy.limit, "too few executes to prove anything"
    odd = [h.row() for h in hits if h.status != 200]
    assert not odd, f"{len(odd)} of {len(hits)} executes not admitted with rate limiting off: {odd[:5]}"
    # more than twice the quota inside one window's time: an enabled limiter must have refused some
    duration = max(h.received_at for h in hits) - min(h.sent_at for h in hits)
    assert duration < rl_policy.window_s, (
        f"the burst took {duration:.2f} s, longer than a {rl_policy.window_s} s window: inconclusive"
    )
