"""Steps for features/rate_limit.feature: per-workspace quotas and the headers of a burst.

The other rate-limit steps live beside this module: ``rate_limit_workspaces`` (window roll-over,
isolation, the workspace a request is counted against, the Redis keys), ``rate_limit_replicas``
(bursts spread over replicas, rate limiting switched off) and ``rate_limit_outage`` (the Redis
fallback). How a burst is kept inside one window is told in :mod:`features.support.rate_limit_windows`.

Everything is observed over HTTP: executes, their headers and GET /metrics. Redis is only killed,
paused and restarted through the stack's control handles, and inspected (the key scenario) through
``target.redis_url`` when the target has one.
"""

from __future__ import annotations

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from features.support import quota, skips
from features.support.rate_limit_support import (
    CLOCK_TOLERANCE_S,
    Burst,
    Ledger,
    check_all,
    execute_hit,
    reset_kinds,
)
from features.support.rate_limit_windows import (
    WindowStart,
    align,
    assert_one_window,
    once_more_after_fallback,
)
from features.support.recording import ExchangeRecorder
from gate.client.target import RateLimitPolicy, Target
from gate.oracles.ratelimit import Moment

# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rl_ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def rl_policy(target: Target) -> RateLimitPolicy:
    if target.rate_limit is None:
        skips.missing_config(f"{target.name}: needs the rate-limit policy ([rate_limit] limit and window_s)")
    return target.rate_limit


# -- bursts ----------------------------------------------------------------------------------------


@given("a workspace with time left in the current rate-limit window", target_fixture="rl_start")
def _(
    http: httpx.Client,
    target: Target,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
    request: pytest.FixtureRequest,
) -> WindowStart:
    creds = quota.choose(request, target, rl_ledger, fresh=False)
    return align(http, creds, rl_policy, rl_ledger, recorder, fresh=False, planned=rl_policy.limit + 5)[0]


@given("a workspace with its full rate-limit quota at the start of a window", target_fixture="rl_start")
def _(
    http: httpx.Client,
    target: Target,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
    request: pytest.FixtureRequest,
) -> WindowStart:
    creds = quota.choose(request, target, rl_ledger, fresh=True)

    def start() -> WindowStart:
        return align(http, creds, rl_policy, rl_ledger, recorder, fresh=True, planned=3 * rl_policy.limit)[0]

    first = start()
    first.realign = start
    return first


@when(parsers.parse("the workspace sends a burst of quota + {extra:d} executes"), target_fixture="rl_burst")
def _(
    http: httpx.Client,
    rl_start: WindowStart,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
    extra: int,
) -> Burst:
    def send(start: WindowStart) -> Burst:
        hits = [start.probe]
        while len(hits) < rl_policy.limit + extra:
            hits.append(execute_hit(http, start.cred, rl_ledger, endpoint=rl_policy.endpoint, t0=start.t0))
        return Burst(start.cred, hits)

    burst = once_more_after_fallback(send, rl_start, rl_policy, recorder)
    recorder.note("burst", burst.evidence(rl_policy))
    return burst


@then("at least one execute of the burst is refused with 429")
def _(rl_burst: Burst) -> None:
    odd = [h.row() for h in rl_burst.hits if h.status not in (200, 429)]
    assert not odd, f"executes answered neither 200 nor 429: {odd}"
    assert rl_burst.refused, f"no 429 in a burst of {len(rl_burst.hits)} executes: {rl_burst.statuses()}"


@then("every refused execute carries Retry-After and the X-RateLimit headers")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy, recorder: ExchangeRecorder) -> None:
    problems = []
    for h in rl_burst.refused:
        where, rl = f"429 at t={h.t_ms:.0f} ms", h.rl
        for f in (rl.retry_after, rl.limit, rl.remaining, rl.reset):
            if not f.ok:  # "missing", or "malformed: '<raw>' (why)"
                problems.append(f"{where}: {f.name} {f.describe()}")
        if rl.retry_after.value is not None and not _asks_to_wait(rl.retry_after.value):
            problems.append(f"{where}: Retry-After {rl.retry_after.raw} tells the client to retry at once")
        if rl.limit.ok and rl.limit.value != rl_policy.limit:
            problems.append(f"{where}: X-RateLimit-Limit {rl.limit.raw} != quota {rl_policy.limit}")
        if rl.remaining.ok and rl.remaining.value != 0:
            problems.append(f"{where}: X-RateLimit-Remaining is {rl.remaining.raw} on a refusal (expected 0)")
        if h.reset is not None and not h.received_at - 1 <= h.reset <= h.received_at + rl_policy.window_s + 1:
            problems.append(
                f"{where}: X-RateLimit-Reset {rl.reset.raw} ({rl.reset_kind}) is not in the current window"
            )
    recorder.note("x_ratelimit_reset", {"kinds": reset_kinds(rl_burst.hits)})
    check_all(problems, "refusals without usable rate-limit guidance")


def _asks_to_wait(retry: Moment) -> bool:
    """Retry-After of at least 1 s; a date may name the current second (dates have no fractions), and
    client and server clocks may differ by up to CLOCK_TOLERANCE_S."""
    if retry.kind == "date":
        return retry.delta > -CLOCK_TOLERANCE_S
    return retry.delta >= 1


@then("exactly the quota of executes is admitted, all in one window")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    assert_one_window(rl_burst)
    n = rl_policy.limit
    assert len(rl_burst.admitted) == n, (
        f"{len(rl_burst.admitted)} of {len(rl_burst.hits)} executes admitted in one window, quota {n}: "
        f"{rl_burst.statuses()}"
    )
    assert [h.status for h in rl_burst.hits] == [200] * n + [429] * (len(rl_burst.hits) - n), (
        f"the first {n} executes should be admitted and every later one refused: {rl_burst.statuses()}"
    )


@then("X-RateLimit-Remaining counts down to 0 and never goes below")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    seen = [h.header("X-RateLimit-Remaining") for h in rl_burst.hits]
    expected = [str(max(0, rl_policy.limit - i)) for i in range(1, len(rl_burst.hits) + 1)]
    assert seen == expected, f"X-RateLimit-Remaining was {seen}, expected {expected}"


@then("Retry-After on every refusal is at least 1 second and agrees with X-RateLimit-Reset")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    assert rl_burst.refused, "no refusal to check"
    problems = []
    for h in rl_burst.refused:
        where, rl = f"429 at t={h.t_ms:.0f} ms", h.rl
        if rl.retry_after.value is None or rl.reset_in is None:
            problems.append(
                f"{where}: Retry-After {rl.retry_after.describe()}, X-RateLimit-Reset {rl.reset.describe()}"
            )
            continue
        ra, until_reset = rl.retry_after.value.delta, rl.reset_in
        if not _asks_to_wait(rl.retry_after.value):
            problems.append(f"{where}: Retry-After {rl.retry_after.raw} (< 1 s invites an immediate retry)")
        if abs(ra - until_reset) > CLOCK_TOLERANCE_S or ra > rl_policy.window_s + 1:
            problems.append(
                f"{where}: Retry-After {rl.retry_after.raw} ({ra:.2f} s), "
                f"but X-RateLimit-Reset is {until_reset:.2f} s away"
            )
    check_all(problems, f"Retry-After disagrees with the reset (tolerance {CLOCK_TOLERANCE_S} s)")


@then("every refusal is a problem document that must not be cached")
def _(rl_burst: Burst) -> None:
    problems = []
    for h in rl_burst.refused:
        assert h.response is not None
        where = f"429 at t={h.t_ms:.0f} ms"
        if "no-store" not in (h.header("Cache-Control") or ""):
            problems.append(f"{where}: Cache-Control is {h.header('Cache-Control')!r}, not no-store")
        ctype = (h.header("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/problem+json":
            problems.append(f"{where}: Content-Type {ctype!r}, not application/problem+json")
            continue
        try:
            doc = h.response.json()
        except ValueError:
            problems.append(f"{where}: the body is not JSON: {h.response.text[:100]!r}")
            continue
        if doc.get("status") != 429 or not all(isinstance(doc.get(k), str) for k in ("title", "detail")):
            problems.append(f"{where}: not a problem document for a 429: {str(doc)[:200]}")
    check_all(problems, "refusals that are not uncacheable problem documents")


@then("the RateLimit and RateLimit-Policy fields agree with the X-RateLimit headers")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    """The IETF fields (draft-ietf-httpapi-ratelimit-headers) on every answer: well-formed, one service
    limit naming a listed policy, q/w the target's policy, r and t the X-RateLimit values. An X-RateLimit
    header that is itself missing or malformed is the X-RateLimit scenarios' finding: nothing to compare
    here; likewise a Retry-After, which on a refusal must name the end of the effective window t."""
    problems = []
    for h in rl_burst.hits:
        where, rl = f"{h.status} at t={h.t_ms:.0f} ms", h.rl
        if rl.ratelimit.value is None or rl.policy.value is None:
            problems.append(
                f"{where}: RateLimit {rl.ratelimit.describe()}, RateLimit-Policy {rl.policy.describe()}"
            )
            continue
        limits, policies = rl.ratelimit.value, rl.policy.value
        if len(limits) != 1:
            problems.append(
                f"{where}: RateLimit {rl.ratelimit.raw!r} names {len(limits)} service limits, not one"
            )
            continue
        (limit,) = limits
        policy = next((p for p in policies if p.name == limit.policy), None)
        if policy is None:
            problems.append(
                f"{where}: RateLimit names policy {limit.policy!r}, RateLimit-Policy lists "
                f"{[p.name for p in policies]}"
            )
            continue
        q, w, r, t = policy.quota, policy.window, limit.remaining, limit.reset
        if q != rl_policy.limit or (rl.limit.ok and q != rl.limit.value):
            problems.append(f"{where}: q={q}, X-RateLimit-Limit {rl.limit.raw}, quota {rl_policy.limit}")
        if w != rl_policy.window_s:
            problems.append(f"{where}: w={w}, window {rl_policy.window_s} s")
        if rl.remaining.ok and r != rl.remaining.value:
            problems.append(f"{where}: r={r}, X-RateLimit-Remaining {rl.remaining.raw}")
        if t is None:
            problems.append(f"{where}: RateLimit {rl.ratelimit.raw!r} has no t (the effective window)")
            continue
        retry = rl.retry_after.value
        # a fixed window: a refusal's Retry-After and t both name the window's end, from one clock
        # (exactly, as delay-seconds; a date has whole seconds and is read on the client's clock)
        if (
            h.status == 429
            and retry is not None
            and (retry.sent != t if retry.kind == "delta" else abs(retry.delta - t) > CLOCK_TOLERANCE_S)
        ):
            problems.append(f"{where}: t={t}, Retry-After {rl.retry_after.raw}")
        if rl.reset_in is not None and abs(t - rl.reset_in) > CLOCK_TOLERANCE_S:
            problems.append(
                f"{where}: t={t} s, but X-RateLimit-Reset {rl.reset.raw} is {rl.reset_in:.2f} s away"
            )
    check_all(problems, "RateLimit / RateLimit-Policy disagree with the X-RateLimit headers")
