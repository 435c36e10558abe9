"""Steps for features/rate_limit.feature about workspaces: a window rolling over, one workspace's quota
untouched by another's, the client unable to choose the workspace it is counted against, and the
rate-limit keys in Redis naming only configured workspaces.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from pytest_bdd import given, then, when

from features.support import quota, skips
from features.support.executes import NOTIFY
from features.support.rate_limit_support import (
    CLOCK_TOLERANCE_S,
    EPSILON_S,
    Burst,
    Hit,
    Ledger,
    answered,
    check_all,
    execute_hit,
    same_window,
)
from features.support.rate_limit_windows import WindowStart, align, use_up
from features.support.recording import ExchangeRecorder
from gate.client.target import RateLimitPolicy, Target

# docs/service.md: a workspace id matches ^[a-z0-9][a-z0-9_-]{0,62}$; keys are rl:{workspace}:{window}
RL_KEY = re.compile(r"rl:(?P<ws>[a-z0-9][a-z0-9_-]{0,62}):(?P<index>\d+)")


# -- window roll-over, isolation, the client choosing its workspace ----------------------------------


@given("the rate-limit window is short enough to wait for")
def _(rl_policy: RateLimitPolicy) -> None:
    if rl_policy.window_s > rl_policy.max_wait_s:
        skips.precondition(
            f"the rate-limit window is {rl_policy.window_s} s, longer than rate_limit.max_wait_s "
            f"({rl_policy.max_wait_s:g} s): not waiting for it to roll over"
        )


@given("a workspace that has used its rate-limit quota in the current window", target_fixture="rl_exhausted")
def _(
    http: httpx.Client,
    target: Target,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
    request: pytest.FixtureRequest,
) -> Burst:
    creds = quota.choose(request, target, rl_ledger, fresh=False)
    start = align(http, creds, rl_policy, rl_ledger, recorder, fresh=False, planned=rl_policy.limit + 10)[0]
    return use_up(http, start, rl_policy, rl_ledger)


@when("the rate-limit window rolls over", target_fixture="rl_rolled_at")
def _(rl_exhausted: Burst, rl_policy: RateLimitPolicy) -> float:
    refusal = rl_exhausted.hits[-1]
    assert refusal.reset is not None  # answered() made sure
    # a client that honours Retry-After (and the announced reset) waits this long, and no longer; a
    # Retry-After that is missing or malformed is the burst scenarios' finding, not this one's
    until = max(refusal.reset, refusal.received_at + (refusal.retry_after or 0)) + EPSILON_S
    assert until - refusal.received_at <= rl_policy.window_s + CLOCK_TOLERANCE_S, (
        f"the refusal asks to wait {until - refusal.received_at:.1f} s, "
        f"longer than a {rl_policy.window_s} s window"
    )
    time.sleep(max(0.0, until - time.time()))
    return time.time()


@then("the workspace's next execute is admitted with a fresh quota")
def _(
    http: httpx.Client,
    rl_exhausted: Burst,
    rl_rolled_at: float,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
) -> None:
    refusal = rl_exhausted.hits[-1]
    hit = execute_hit(http, rl_exhausted.cred, rl_ledger, endpoint=rl_policy.endpoint)
    recorder.note(
        "rollover",
        {
            "workspace": rl_exhausted.cred.workspace,
            "refusal": refusal.row(),
            "waited_s": round(rl_rolled_at - refusal.received_at, 3),
            "next": hit.row(),
        },
    )
    assert hit.status == 200, (
        f"{hit.status} {hit.row()} after waiting {rl_rolled_at - refusal.received_at:.2f} s "
        f"(Retry-After {refusal.rl.retry_after.describe()}, X-RateLimit-Reset {refusal.rl.reset.describe()})"
    )
    assert hit.remaining == rl_policy.limit - 1, (
        f"a new window should leave {rl_policy.limit - 1}: {hit.row()}"
    )
    assert hit.reset is not None and refusal.reset is not None, f"X-RateLimit-Reset {hit.rl.reset.describe()}"
    assert hit.reset > refusal.reset and not same_window(hit, refusal), (
        f"X-RateLimit-Reset did not move on: {refusal.rl.reset.raw} -> {hit.rl.reset.raw}"
    )


@given("two workspaces with their full rate-limit quota at the start of a window", target_fixture="rl_pair")
def _(
    http: httpx.Client,
    target: Target,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
    request: pytest.FixtureRequest,
) -> list[WindowStart]:
    creds = quota.choose(request, target, rl_ledger, 2, fresh=True)
    assert len(creds) == 2, "the target has keys for one workspace only"
    return align(http, creds, rl_policy, rl_ledger, recorder, fresh=True, planned=rl_policy.limit + 5)


@when("the first workspace uses up its quota", target_fixture="rl_exhausted")
def _(http: httpx.Client, rl_pair: list[WindowStart], rl_policy: RateLimitPolicy, rl_ledger: Ledger) -> Burst:
    return use_up(http, rl_pair[0], rl_policy, rl_ledger)


@then("the second workspace's quota is intact")
def _(
    http: httpx.Client,
    rl_pair: list[WindowStart],
    rl_exhausted: Burst,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
) -> None:
    other = rl_pair[1]
    hit = execute_hit(http, other.cred, rl_ledger, endpoint=rl_policy.endpoint, t0=rl_pair[0].t0)
    recorder.note(
        "isolation",
        {
            "exhausted": rl_exhausted.cred.workspace,
            "other": other.cred.workspace,
            "exhausted_timeline": [h.row() for h in rl_exhausted.hits],
            "other_probe": other.probe.row(),
            "other_after": hit.row(),
        },
    )
    assert same_window(hit, rl_exhausted.hits[-1]), "the check left the window: inconclusive"
    assert hit.status == 200 and hit.remaining == rl_policy.limit - 2, (
        f"workspace {other.cred.workspace} used 1 execute, then {rl_exhausted.cred.workspace} used up its "
        f"quota; {other.cred.workspace}'s next execute got {hit.status} with X-RateLimit-Remaining "
        f"{hit.remaining} (expected 200 and {rl_policy.limit - 2})"
    )


def _other_workspace(target: Target, mine: str) -> str:
    other = target.credential("dev", exclude_workspace=mine)
    return other.workspace if other is not None else "ws-b"


@when(
    "it retries naming another workspace in an X-Workspace-ID header, a query parameter or a body field",
    target_fixture="rl_retries",
)
def _(
    http: httpx.Client,
    target: Target,
    rl_exhausted: Burst,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
) -> list[tuple[str, Hit]]:
    cred = rl_exhausted.cred
    other = _other_workspace(target, cred.workspace)
    tries: list[tuple[str, dict[str, Any]]] = [
        (f"X-Workspace-ID: {v[:20]}{'…' if len(v) > 20 else ''}", {"headers": {"X-Workspace-ID": v}})
        for v in (other, "other-tenant", "a:b*", "*", "a" * 300)
    ]
    tries += [
        (f"?workspace={other}", {"params": {"workspace": other}}),
        (f'body "workspace": "{other}"', {"body": {**NOTIFY, "workspace": other}}),
    ]
    retries = [
        (label, execute_hit(http, cred, rl_ledger, endpoint=rl_policy.endpoint, **kw)) for label, kw in tries
    ]
    recorder.note(
        "workspace_spoofing",
        {
            "workspace": cred.workspace,
            "exhausted": rl_exhausted.hits[-1].row(),
            "retries": [{"try": lbl, **h.row()} for lbl, h in retries],
        },
    )
    return retries


@then("every retry is refused and counted against the workspace's own quota")
def _(rl_exhausted: Burst, rl_retries: list[tuple[str, Hit]]) -> None:
    exhausted = rl_exhausted.hits[-1]
    problems = []
    for label, h in rl_retries:
        if label.startswith("body") and h.status == 422:
            continue  # refused as an unknown field before it is counted: fine, nothing was admitted
        # a 429 with X-RateLimit-Remaining 0 was counted against the used-up quota; a Remaining that is
        # missing or malformed is the burst scenarios' finding, so here the 429 and the window must do
        if h.status != 429 or (h.rl.remaining.ok and h.remaining != 0):
            problems.append(
                f"{label}: {h.status} with X-RateLimit-Remaining {h.header('X-RateLimit-Remaining')}"
                f" — the request escaped workspace {rl_exhausted.cred.workspace}'s used-up quota"
            )
        elif not same_window(h, exhausted):
            problems.append(
                f"{label}: counted in window {h.reset}, not {exhausted.reset}: inconclusive (window rolled)"
            )
    check_all(problems, "the client chose the workspace it is counted against")


# -- Redis keys ------------------------------------------------------------------------------------


@pytest.fixture
def rl_redis_client(target: Target) -> Iterator[redis.Redis]:
    if not target.redis_url:
        skips.not_applicable(
            f"{target.name}: its Redis cannot be inspected "
            "(its Redis is not the gate's to read: [redis].url_env in the target config lets it look)"
        )
    client = redis.Redis.from_url(
        target.redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
    )
    try:
        yield client
    finally:
        client.close()


@given("the target's Redis can be inspected", target_fixture="rl_redis")
def _(rl_redis_client: redis.Redis) -> redis.Redis:
    assert rl_redis_client.ping(), "the target's Redis does not answer PING"
    return rl_redis_client


@when(
    "a workspace sends executes naming other workspaces in X-Workspace-ID headers", target_fixture="rl_named"
)
def _(
    http: httpx.Client,
    target: Target,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    request: pytest.FixtureRequest,
) -> list[Hit]:
    cred = quota.choose(request, target, rl_ledger, fresh=False)[0]
    values = ["other-tenant", _other_workspace(target, cred.workspace), "a:b*", "*", "rl:x:1", "a" * 300]
    return [
        answered(
            execute_hit(http, cred, rl_ledger, endpoint=rl_policy.endpoint, headers={"X-Workspace-ID": v})
        )
        for v in values
    ]


@then("every rate-limit key in Redis is rl:<configured workspace>:<current window index> with a TTL")
def _(
    rl_redis: redis.Redis,
    rl_named: list[Hit],
    target: Target,
    rl_policy: RateLimitPolicy,
    recorder: ExchangeRecorder,
) -> None:
    configured = {c.workspace for c in target.credentials.values()}
    current = math.floor(time.time() / rl_policy.window_s)
    keys = sorted(str(k) for k in rl_redis.scan_iter(match="rl:*", count=1000))
    ttls = {k: int(rl_redis.pttl(k)) for k in keys}
    recorder.note(
        "redis_keys",
        {
            "configured_workspaces": sorted(configured),
            "current_window": current,
            "keys": [{"key": k[:120], "pttl_ms": ttls[k]} for k in keys],
        },
    )
    mine = rl_named[-1]
    assert mine.reset is not None
    # the window that ends at the reset (an epoch on the client's clock: round, a delta is jittered)
    own = f"rl:{mine.workspace}:{round(mine.reset / rl_policy.window_s) - 1}"
    assert own in keys, f"no key {own} for the executes just counted; rl:* keys are {keys[:20]}"
    problems = []
    for k in keys:
        m = RL_KEY.fullmatch(k)
        if m is None or m["ws"] not in configured:
            problems.append(f"{k[:120]!r} does not name a configured workspace {sorted(configured)}")
        elif not current - 2 <= int(m["index"]) <= current + 1:
            problems.append(f"{k!r}: window index {m['index']} is not the current one ({current})")
        ttl = ttls[k]
        if ttl == -1 or ttl > (2 * rl_policy.window_s + 5) * 1000:
            problems.append(f"{k[:120]!r}: PTTL {ttl} ms (must expire within about a window)")
    check_all(problems, "rate-limit keys carry client-chosen text or never expire")


# -- every key of a workspace shares its quota ----------------------------------------------------


@when("the workspace's admin key executes an action", target_fixture="rl_admin_hit")
def _(
    http: httpx.Client,
    target: Target,
    rl_exhausted: Burst,
    rl_policy: RateLimitPolicy,
    rl_ledger: Ledger,
    recorder: ExchangeRecorder,
) -> Hit:
    workspace = rl_exhausted.cred.workspace
    admin = next(
        (c for c in target.credentials.values() if c.role == "admin" and c.workspace == workspace), None
    )
    if admin is None:
        skips.not_applicable(
            f"{target.name}: no admin key of workspace {workspace}, the one whose quota was used up"
        )
    hit = execute_hit(http, admin, rl_ledger, endpoint=rl_policy.endpoint)
    recorder.note(
        "admin_key_quota",
        {"workspace": workspace, "exhausted": rl_exhausted.hits[-1].row(), "admin_execute": hit.row()},
    )
    return hit


@then("the admin key's execute is refused with 429 like the developer's, its quota used up")
def _(rl_exhausted: Burst, rl_admin_hit: Hit) -> None:
    # docs/service.md: POST /actions/execute, any key, rate limited per workspace: the workspace's
    # quota, not the key's role, decides
    h = rl_admin_hit
    assert same_window(h, rl_exhausted.hits[-1]), "the window rolled over before the admin key's execute"
    assert h.status == 429 and (not h.rl.remaining.ok or h.remaining == 0), (
        f"workspace {rl_exhausted.cred.workspace} used up its quota with its developer key; its admin key's "
        f"execute then got {h.status} with X-RateLimit-Remaining {h.header('X-RateLimit-Remaining')} "
        "(expected 429: every key of a workspace draws on the same quota)"
    )
