"""Steps for features/rate_limit.feature that check the limiter's arithmetic on replicas of the reference
stack started with other settings: a window of about an hour (every header exact, no short window to
hide an error in), a counter found without a TTL, and the documented defaults.

The judging is :mod:`features.support.rate_limit_long`'s (pure functions over what the client saw); replicas
and the Redis keys of their windows are looked after by :mod:`features.support.extra_replicas`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from pytest_bdd import given, parsers, then, when

from features.steps.rate_limit_outage import _backends
from features.support import rate_limit_long as long
from features.support import skips
from features.support.extra_replicas import ExtraReplicas, LongReplica
from features.support.rate_limit_support import Hit, Ledger, check_all, execute_hit
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, Target

# unset, the relay must fall back on the documented defaults (an empty value is ignored as unset)
DEFAULTS_UNSET = ("RATE_LIMIT_ENABLED", "RATE_LIMIT_EXEC_PER_MIN", "RATE_LIMIT_WINDOW_S", "REDIS_URL")
DOCUMENTED_DEFAULT = (60, 60)  # docs/service.md: RATE_LIMIT_EXEC_PER_MIN 60, RATE_LIMIT_WINDOW_S 60


@pytest.fixture
def rl_extra(target: Target) -> Iterator[ExtraReplicas]:
    if target.stack is None or not target.controllable:
        skips.not_applicable(
            f"{target.name}: needs control of the target to start replicas with other settings"
        )
    with contextlib.ExitStack() as exits:
        yield ExtraReplicas(target, exits)


def _send(
    client: httpx.Client,
    cred: Credential,
    count: int,
    recorder: ExchangeRecorder,
    note: str,
    *,
    mid_second: bool = False,
) -> list[Hit]:
    client.get("/_stcore/health")  # open the connection: the executes' times are theirs alone
    if mid_second:
        # start a quarter into a second of the (shared) wall clock: the relay's whole-second arithmetic
        # then falls mid-second, so a wait rounded down instead of up is short by about half a second,
        # far more than the time between its computing and our receipt, and shows every time
        time.sleep((long.MID_SECOND_START - time.time() % 1.0) % 1.0)
    ledger = Ledger()  # another window than the session's: keep it out of the session ledger
    t0 = time.monotonic()
    hits = [execute_hit(client, cred, ledger, endpoint="/actions/execute", t0=t0) for _ in range(count)]
    recorder.note(note, {"workspace": cred.workspace, "timeline": [h.row() for h in hits]})
    return hits


# -- a window of about an hour -------------------------------------------------------------------------


@given(
    parsers.parse(
        "a replica of the target with a quota of {limit:d} executes per window of about an hour, mid-window"
    ),
    target_fixture="rl_long",
)
def _(rl_extra: ExtraReplicas, recorder: ExchangeRecorder, limit: int) -> LongReplica:
    window = long.long_window(time.time())
    replica = rl_extra.long_window({}, limit=limit, window_s=window)
    recorder.note(
        "long_window",
        {
            "url": replica.url,
            "limit": limit,
            "window_s": window,
            "index": replica.index,
            "ends_at": replica.end,
            "ends_in_s": round(replica.end - time.time(), 1),
        },
    )
    return replica


@when(
    parsers.parse("a developer sends quota + {extra:d} executes to that replica one after another"),
    target_fixture="rl_long_hits",
)
def _(
    rl_long: LongReplica, dev: Credential, target: Target, recorder: ExchangeRecorder, extra: int
) -> list[Hit]:
    with recorder.client(rl_long.url, timeout=target.request_timeout_s) as client:
        return _send(client, dev, rl_long.limit + extra, recorder, "long_window_burst", mid_second=True)


@then(
    "exactly the quota is admitted, and X-RateLimit-Limit and X-RateLimit-Remaining count down from it to 0"
)
def _(rl_long_hits: list[Hit], rl_long: LongReplica) -> None:
    check_all(long.countdown_problems(rl_long_hits, rl_long.limit), "the quota did not count down exactly")


@then("every answer's X-RateLimit-Reset is the end of the epoch-aligned window, in epoch seconds")
def _(rl_long_hits: list[Hit], rl_long: LongReplica) -> None:
    check_all(
        long.reset_problems(rl_long_hits, rl_long.window_s), "X-RateLimit-Reset is not the window's end"
    )


@then(
    "every answer's RateLimit-Policy and RateLimit state the policy, the remaining quota and the seconds "
    "to the reset"
)
def _(rl_long_hits: list[Hit], rl_long: LongReplica) -> None:
    check_all(
        long.ietf_problems(rl_long_hits, rl_long.limit, rl_long.window_s),
        "RateLimit-Policy / RateLimit misstate the policy or the window",
    )


@then(
    "every refusal asks to retry after the seconds to the reset, must not be cached and is a problem document"
)
def _(rl_long_hits: list[Hit], rl_long: LongReplica) -> None:
    check_all(long.refusal_problems(rl_long_hits, rl_long.window_s), "a refusal misstates the wait")


# -- a counter found without a TTL -------------------------------------------------------------------------


@given(
    parsers.parse("the workspace's counter for that window stands at {count:d} without a TTL"),
    target_fixture="rl_seeded_key",
)
def _(
    rl_long: LongReplica, rl_redis: redis.Redis, dev: Credential, recorder: ExchangeRecorder, count: int
) -> str:
    key = rl_long.key(dev.workspace)
    rl_redis.set(key, count)  # as an older, non-atomic release could leave it: no expiry at all
    assert rl_redis.pttl(key) == -1
    recorder.note("seeded_key", {"key": key, "count": count, "pttl_ms": -1})
    return key


@when(parsers.parse("a developer sends {count:d} execute to that replica"), target_fixture="rl_long_hits")
def _(
    rl_long: LongReplica, dev: Credential, target: Target, recorder: ExchangeRecorder, count: int
) -> list[Hit]:
    with recorder.client(rl_long.url, timeout=target.request_timeout_s) as client:
        return _send(client, dev, count, recorder, "long_window_executes")


@then(parsers.parse("the execute was counted on that key: X-RateLimit-Remaining is {remaining:d}"))
def _(rl_long_hits: list[Hit], rl_seeded_key: str, remaining: int) -> None:
    (hit,) = rl_long_hits
    assert hit.status == 200 and hit.rl.remaining.value == remaining, (
        f"{hit.status} with X-RateLimit-Remaining {hit.rl.remaining.describe()}: an execute counted on "
        f"{rl_seeded_key} should leave {remaining}"
    )


@then("the key expires with its window again")
def _(rl_redis: redis.Redis, rl_seeded_key: str, rl_long: LongReplica, recorder: ExchangeRecorder) -> None:
    pttl = int(rl_redis.pttl(rl_seeded_key))
    now = time.time()
    recorder.note(
        "repaired_key",
        {"key": rl_seeded_key, "pttl_ms": pttl, "window_ends_in_s": round(rl_long.end - now, 3)},
    )
    assert pttl > 0, f"{rl_seeded_key} still has no expiry after an execute counted on it (PTTL {pttl})"
    expires = now + pttl / 1000
    # not before its window ends (it would reset the count mid-window), and not long after it
    assert rl_long.end - 1 <= expires <= rl_long.end + 60, (
        f"{rl_seeded_key} expires {expires - rl_long.end:+.1f} s from the end of its window"
    )


# -- the documented defaults ---------------------------------------------------------------------------------


@given(
    "a replica of the target started without RATE_LIMIT_ENABLED, RATE_LIMIT_EXEC_PER_MIN, "
    "RATE_LIMIT_WINDOW_S and REDIS_URL",
    target_fixture="rl_defaults_url",
)
def _(rl_extra: ExtraReplicas) -> str:
    return rl_extra.start(dict.fromkeys(DEFAULTS_UNSET, ""))


@when(
    parsers.parse("a developer sends {count:d} executes to the replica with the defaults"),
    target_fixture="rl_defaults_hits",
)
def _(
    rl_defaults_url: str, dev: Credential, target: Target, recorder: ExchangeRecorder, count: int
) -> list[Hit]:
    with recorder.client(rl_defaults_url, timeout=target.request_timeout_s) as client:
        return _send(client, dev, count, recorder, "defaults_executes")


@then(
    parsers.parse(
        "both are admitted under the documented default policy of {limit:d} executes per {window:d} seconds"
    )
)
def _(rl_defaults_hits: list[Hit], limit: int, window: int) -> None:
    assert (limit, window) == DOCUMENTED_DEFAULT, "the feature and docs/service.md disagree on the defaults"
    problems = [p for p in long.countdown_problems(rl_defaults_hits, limit)]
    for i, h in enumerate(rl_defaults_hits):
        policy = h.rl.policy.value
        if policy is None or [(p.name, p.quota, p.window) for p in policy] != [
            (long.POLICY_NAME, limit, window)
        ]:
            problems.append(
                f"execute {i + 1}: RateLimit-Policy {h.rl.policy.describe()}, expected "
                f'"{long.POLICY_NAME}";q={limit};w={window}'
            )
    check_all(problems, "a relay without rate-limit settings does not apply the documented defaults")


@then("that replica's rate limiter is the in-process limiter")
def _(rl_defaults_url: str, target: Target, recorder: ExchangeRecorder) -> None:
    with recorder.client(rl_defaults_url, timeout=target.request_timeout_s) as client:
        backends = _backends(client)
    recorder.note("defaults_backend", backends)
    assert backends.get("memory") == 1.0, f"without REDIS_URL the limiter should be in-process: {backends}"
