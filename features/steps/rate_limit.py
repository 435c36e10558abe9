"""Steps for features/rate_limit.feature: per-workspace quotas and the headers of a burst.

The other rate-limit steps live beside this module: ``rate_limit_workspaces`` (window roll-over,
isolation, the workspace a request is counted against, the Redis keys), ``rate_limit_replicas``
(bursts spread over replicas, rate limiting switched off) and ``rate_limit_outage`` (the Redis
fallback). How a burst is kept inside one window is told in :mod:`features.rate_limit_windows`.

Everything is observed over HTTP: executes, their headers and GET /metrics. Redis is only killed,
paused and restarted through the stack's control handles, and inspected (the key scenario) through
``target.redis_url`` when the target has one.
"""

from __future__ import annotations

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from features import quota, skips
from features.rate_limit_support import (
    CLOCK_TOLERANCE_S,
    Burst,
    Ledger,
    check_all,
    execute,
)
from features.rate_limit_windows import WindowStart, align, assert_one_window, once_more_after_fallback
from features.recording import Recorder
from gate.target import RateLimitPolicy, Target

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
    recorder: Recorder,
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
    recorder: Recorder,
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
    recorder: Recorder,
    extra: int,
) -> Burst:
    def send(start: WindowStart) -> Burst:
        hits = [start.probe]
        while len(hits) < rl_policy.limit + extra:
            hits.append(execute(http, start.cred, rl_ledger, endpoint=rl_policy.endpoint, t0=start.t0))
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
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    problems = []
    for h in rl_burst.refused:
        where = f"429 at t={h.t_ms:.0f} ms"
        for name in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            if h.number(name) is None:
                problems.append(f"{where}: {name} is {h.header(name)!r}, not an integer")
        if h.retry_after is not None and h.retry_after < 1:
            problems.append(f"{where}: Retry-After {h.retry_after} tells the client to retry at once")
        if h.number("X-RateLimit-Limit") not in (None, rl_policy.limit):
            problems.append(
                f"{where}: X-RateLimit-Limit {h.header('X-RateLimit-Limit')} != quota {rl_policy.limit}"
            )
        if h.remaining not in (None, 0):
            problems.append(f"{where}: X-RateLimit-Remaining is {h.remaining} on a refusal (expected 0)")
        if h.reset is not None and not h.received_at - 1 <= h.reset <= h.received_at + rl_policy.window_s + 1:
            problems.append(f"{where}: X-RateLimit-Reset {h.reset} is not within the current window")
    check_all(problems, "refusals without usable rate-limit guidance")


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
        ra, reset = h.retry_after, h.reset
        if ra is None or reset is None:
            problems.append(
                f"429 at t={h.t_ms:.0f} ms: Retry-After {h.header('Retry-After')!r}, reset {reset}"
            )
            continue
        until_reset = reset - h.received_at
        if ra < 1:
            problems.append(f"429 at t={h.t_ms:.0f} ms: Retry-After {ra} (< 1 s invites an immediate retry)")
        if abs(ra - until_reset) > CLOCK_TOLERANCE_S or ra > rl_policy.window_s + 1:
            problems.append(
                f"429 at t={h.t_ms:.0f} ms: Retry-After {ra} s, "
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


def _sf_list(value: str | None) -> dict[str, dict[str, str]]:
    """A structured-field list ``"name";k=v;k=v, ...`` by item name (enough for RateLimit/-Policy)."""
    items: dict[str, dict[str, str]] = {}
    for item in (value or "").split(","):
        name, *params = (p.strip() for p in item.split(";"))
        if name:
            items[name.strip('"')] = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in params)}
    return items


@then("the RateLimit and RateLimit-Policy fields agree with the X-RateLimit headers")
def _(rl_burst: Burst, rl_policy: RateLimitPolicy) -> None:
    problems = []
    for h in rl_burst.hits:
        where = f"{h.status} at t={h.t_ms:.0f} ms"
        policies, fields = _sf_list(h.header("RateLimit-Policy")), _sf_list(h.header("RateLimit"))
        if len(fields) != 1 or not policies:
            problems.append(
                f"{where}: RateLimit {h.header('RateLimit')!r}, RateLimit-Policy "
                f"{h.header('RateLimit-Policy')!r}"
            )
            continue
        ((name, rl),) = fields.items()
        pol = policies.get(name)
        if pol is None:
            problems.append(
                f"{where}: RateLimit names policy {name!r}, RateLimit-Policy lists {list(policies)}"
            )
            continue
        try:
            q, w, r, t = int(pol["q"]), int(pol["w"]), int(rl["r"]), int(rl["t"])
        except (KeyError, ValueError):
            problems.append(f"{where}: q/w/r/t missing or not integers: {pol} {rl}")
            continue
        if q != h.number("X-RateLimit-Limit") or q != rl_policy.limit:
            problems.append(
                f"{where}: q={q}, X-RateLimit-Limit {h.header('X-RateLimit-Limit')}, quota {rl_policy.limit}"
            )
        if w != rl_policy.window_s:
            problems.append(f"{where}: w={w}, window {rl_policy.window_s} s")
        if r != h.remaining:
            problems.append(f"{where}: r={r}, X-RateLimit-Remaining {h.header('X-RateLimit-Remaining')}")
        if h.status == 429 and t != h.retry_after:
            problems.append(f"{where}: t={t}, Retry-After {h.header('Retry-After')}")
        if h.reset is None or abs(t - (h.reset - h.received_at)) > CLOCK_TOLERANCE_S:
            problems.append(
                f"{where}: t={t} s, but X-RateLimit-Reset {h.reset} is "
                f"{(h.reset or 0) - h.received_at:.2f} s away"
            )
    check_all(problems, "RateLimit / RateLimit-Policy disagree with the X-RateLimit headers")
