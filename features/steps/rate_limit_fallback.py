"""Steps for features/rate_limit.feature about the in-process fallback's own bounds, on replicas of the
reference stack whose Redis is behind a switch (:class:`~features.support.redis_switch.RedisSwitch`): cut from
the start (each replica limits on its own: N replicas admit at most N x quota, never a 5xx), or cut for a
while and restored (the re-probe backoff is capped, and the replica returns to Redis when it answers).

The Redis the other replicas share is never touched. Which limiter a replica is on is read from its
GET /metrics (``rate_limiter_backend``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from pytest_bdd import given, parsers, then, when

from features.steps.rate_limit_outage import _backends
from features.support import rate_limit_long as long
from features.support.extra_replicas import ExtraReplicas, LongReplica
from features.support.rate_limit_support import (
    DELTA_RESET_JITTER_S,
    Hit,
    Ledger,
    check_all,
    execute_hit,
    parallel,
)
from features.support.recording import ExchangeRecorder
from features.support.redis_switch import RedisSwitch
from gate.client.target import Credential, Target

POLL_S = 0.05
# a fallback bucket refills at quota / window per second: over an hour-long window and a burst of a few
# seconds that is a hundredth of an execute, so a replica admits its quota and not one more
REFILL_ALLOWANCE = 0


@dataclass
class CutReplicas:
    """Replicas whose Redis connection goes through ``switch``."""

    replicas: list[LongReplica]
    switch: RedisSwitch
    reprobe_max_s: float | None = None
    during_cut: list[Hit] = field(default_factory=list)
    backends_during_cut: dict[str, float] = field(default_factory=dict)
    restored_at: float | None = None


def _start(
    rl_extra: ExtraReplicas, n: int, limit: int, *, on: bool, extra: dict[str, str] | None = None
) -> CutReplicas:
    assert rl_extra.target.redis_url is not None, "the reference stack always has a Redis"
    switch = rl_extra.switch(on=on)
    window = long.long_window(time.time())
    env = {"REDIS_URL": switch.url_for(rl_extra.target.redis_url), **(extra or {})}
    replicas = [rl_extra.long_window(env, limit=limit, window_s=window) for _ in range(n)]
    return CutReplicas(replicas, switch)


# -- cut from the start: each replica on its own -------------------------------------------------------


@given(
    parsers.parse(
        "{n:d} replicas of the target with a quota of {limit:d} executes per window of about an hour, "
        "whose Redis does not answer"
    ),
    target_fixture="rl_cut",
)
def _(rl_extra: ExtraReplicas, recorder: ExchangeRecorder, n: int, limit: int) -> CutReplicas:
    cut = _start(rl_extra, n, limit, on=False)
    recorder.note(
        "fallback_replicas",
        {
            "urls": [r.url for r in cut.replicas],
            "limit": limit,
            "window_s": cut.replicas[0].window_s,
            "redis": "every connection dropped",
        },
    )
    return cut


@when(
    parsers.parse("a developer sends {factor:d} x quota executes to each of those replicas at once"),
    target_fixture="rl_cut_hits",
)
def _(
    rl_cut: CutReplicas, dev: Credential, target: Target, recorder: ExchangeRecorder, factor: int
) -> list[Hit]:
    urls = [r.url for r in rl_cut.replicas]
    count = factor * rl_cut.replicas[0].limit * len(urls)
    hits = asyncio.run(
        parallel(
            recorder,
            dev,
            urls,
            count,
            endpoint="/actions/execute",
            timeout_s=target.request_timeout_s,
            t0=time.monotonic(),
        )
    )
    recorder.note(
        "fallback_burst",
        {"requests": len(hits), "per_replica": _per_replica(hits, urls), "timeline": [h.row() for h in hits]},
    )
    return hits


def _per_replica(hits: list[Hit], urls: list[str]) -> dict[str, dict[str, int]]:
    return {
        u: {
            "admitted": sum(1 for h in hits if h.replica == u and h.status == 200),
            "refused": sum(1 for h in hits if h.replica == u and h.status == 429),
            "other": sum(1 for h in hits if h.replica == u and h.status not in (200, 429)),
        }
        for u in urls
    }


@then("none of them fails with a 5xx or goes unanswered")
def _(rl_cut_hits: list[Hit]) -> None:
    bad = [h.row() for h in rl_cut_hits if h.error is not None or h.status >= 500 or h.status == 0]
    check_all(
        [str(b) for b in bad], "executes failed while Redis did not answer (the limiter must fail open)"
    )


@then("each of those replicas admits at most the quota on its own, and at least one execute")
def _(rl_cut_hits: list[Hit], rl_cut: CutReplicas) -> None:
    urls = [r.url for r in rl_cut.replicas]
    limit = rl_cut.replicas[0].limit
    counts = _per_replica(rl_cut_hits, urls)
    problems = []
    for url, c in counts.items():
        if c["admitted"] > limit + REFILL_ALLOWANCE:
            problems.append(
                f"{url} admitted {c['admitted']} of {c['admitted'] + c['refused']}: "
                f"more than its quota {limit}"
            )
        if c["admitted"] < 1:
            problems.append(f"{url} admitted nothing: failing open means serving, within the quota")
        if c["other"]:
            problems.append(f"{url}: {c['other']} execute(s) answered neither 200 nor 429")
    total = sum(c["admitted"] for c in counts.values())
    if total > len(urls) * limit:
        problems.append(
            f"{total} admitted over {len(urls)} replicas: more than N x quota = {len(urls) * limit}"
        )
    check_all(problems, "the in-process fallback is not bounded per replica")


@then("each of those replicas reports the in-process limiter")
def _(rl_cut: CutReplicas, target: Target, recorder: ExchangeRecorder) -> None:
    readings = {}
    for r in rl_cut.replicas:
        with recorder.client(r.url, timeout=target.request_timeout_s) as client:
            readings[r.url] = _backends(client)
    recorder.note("fallback_backends", readings)
    off = {u: b for u, b in readings.items() if b.get("memory") != 1.0}
    assert not off, f"replicas whose Redis does not answer report another limiter: {off}"


# -- cut for a while, then restored: the re-probe ------------------------------------------------------


@given(
    parsers.parse(
        "a replica of the target whose connection to Redis can be cut, with REDIS_REPROBE_MAX_S={cap:g}"
    ),
    target_fixture="rl_cut",
)
def _(rl_extra: ExtraReplicas, recorder: ExchangeRecorder, cap: float) -> CutReplicas:
    cut = _start(rl_extra, 1, 20, on=True, extra={"REDIS_REPROBE_MAX_S": f"{cap:g}"})
    cut.reprobe_max_s = cap
    recorder.note("reprobe_replica", {"url": cut.replicas[0].url, "reprobe_max_s": cap})
    return cut


@given("that replica's rate limiter has counted an execute on Redis")
def _(rl_cut: CutReplicas, dev: Credential, target: Target, recorder: ExchangeRecorder) -> None:
    replica = rl_cut.replicas[0]
    with recorder.client(replica.url, timeout=target.request_timeout_s) as client:
        hit = execute_hit(client, dev, Ledger(), endpoint="/actions/execute")
        backends = _backends(client)
    recorder.note("before_cut", {"execute": hit.row(), "backends": backends})
    assert hit.status == 200 and backends.get("redis") == 1.0, (
        f"the replica should count on Redis before the cut: {hit.row()}, limiter {backends}"
    )
    # the end of the shared fixed window (give or take a delta's rounding: how the reset is written is
    # the long-window scenario's business), not a token bucket's refill time
    assert hit.reset is not None and abs(hit.reset - replica.end) < DELTA_RESET_JITTER_S, (
        f"X-RateLimit-Reset {hit.rl.reset.describe()} is not the end of the shared window ({replica.end}): "
        "the execute was not counted on Redis"
    )


@when(
    parsers.parse("its Redis connection is cut for {seconds:g} seconds while it serves executes"),
    target_fixture="rl_restored_at",
)
def _(
    rl_cut: CutReplicas, dev: Credential, target: Target, recorder: ExchangeRecorder, seconds: float
) -> float:
    replica = rl_cut.replicas[0]
    with recorder.client(replica.url, timeout=target.request_timeout_s) as client:
        rl_cut.switch.cut()
        # the first execute meets the dropped connection: the re-probe clock starts with its answer
        hits = [execute_hit(client, dev, Ledger(), endpoint="/actions/execute")]
        failed_at = time.monotonic()
        readings = _backends(client)
        while time.monotonic() - failed_at < seconds:
            time.sleep(min(0.7, max(0.0, seconds - (time.monotonic() - failed_at))))
            hits.append(execute_hit(client, dev, Ledger(), endpoint="/actions/execute"))
    rl_cut.during_cut, rl_cut.backends_during_cut = hits, readings
    rl_cut.switch.restore()
    restored = time.monotonic()
    recorder.note(
        "cut",
        {
            "seconds": round(restored - failed_at, 3),
            "backends_after_first_failure": readings,
            "executes": [h.row() for h in hits],
        },
    )
    return restored


@then("every execute it served during the cut succeeded, none with a 5xx")
def _(rl_cut: CutReplicas) -> None:
    bad = [str(h.row()) for h in rl_cut.during_cut if h.status != 200]
    check_all(bad, "executes did not succeed while Redis was cut (the limiter must fail open)")


@then("its rate limiter fell back to the in-process limiter during the cut")
def _(rl_cut: CutReplicas) -> None:
    assert rl_cut.backends_during_cut.get("memory") == 1.0, (
        f"after an execute met the cut connection the limiter reported {rl_cut.backends_during_cut}, "
        "not the in-process limiter"
    )


@then(parsers.parse("its rate limiter is back on Redis within {bound:g} seconds of Redis answering again"))
def _(
    rl_cut: CutReplicas, rl_restored_at: float, target: Target, recorder: ExchangeRecorder, bound: float
) -> None:
    assert rl_cut.reprobe_max_s is not None
    replica = rl_cut.replicas[0]
    took: float | None = None
    last: dict[str, float] = {}
    give_up = 4 * bound + 2  # watch a while longer than the bound, so the evidence says how late it was
    with httpx.Client(base_url=replica.url, timeout=target.request_timeout_s) as client:
        while time.monotonic() - rl_restored_at < give_up:
            last = _backends(client)
            if last.get("redis") == 1.0:
                took = time.monotonic() - rl_restored_at
                break
            time.sleep(POLL_S)
    recorder.note(
        "reprobe",
        {
            "reprobe_max_s": rl_cut.reprobe_max_s,
            "bound_s": bound,
            "back_after_s": None if took is None else round(took, 3),
            "last_reading": last,
        },
    )
    assert took is not None and took <= bound, (
        f"back on Redis {'after ' + format(took, '.2f') + ' s' if took is not None else 'never'} "
        f"(within {give_up:g} s watched) once it answered again; "
        f"REDIS_REPROBE_MAX_S={rl_cut.reprobe_max_s:g} caps the re-probe backoff: the bound is {bound:g} s; "
        f"{last}"
    )
