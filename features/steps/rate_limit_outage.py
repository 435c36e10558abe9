"""Steps for features/rate_limit.feature's Redis outages: Redis hung or killed under executes to every
replica, the latency bound they must meet on the in-process fallback, and the return to Redis.

Redis is only paused, killed, resumed and restarted through the stack's control handles; which
limiter a replica is on is read from its GET /metrics (the ``rate_limiter_backend`` gauge).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from pytest_bdd import given, parsers, then, when

from features.support import skips
from features.support.rate_limit_support import Hit, check_all, parallel
from features.support.recording import ExchangeRecorder
from gate.client.target import Credential, Target

OUTAGE_CLIENT_TIMEOUT_S = 4.0  # give up on a stalled execute: twice the 2 s bound, well under the 10 s stall
_BACKEND_LINE = re.compile(r'^rate_limiter_backend\{backend="(?P<backend>[^"]+)"\}\s+(?P<value>\S+)$', re.M)


def _backends(client: httpx.Client) -> dict[str, float]:
    r = client.get("/metrics")
    assert r.status_code == 200, f"GET {client.base_url}/metrics answered {r.status_code}"
    found = {m["backend"]: float(m["value"]) for m in _BACKEND_LINE.finditer(r.text)}
    assert found, f"GET {client.base_url}/metrics has no rate_limiter_backend gauge"
    return found


def _wait_backend(
    replicas: dict[str, httpx.Client], backend: str, timeout_s: float
) -> tuple[float, dict[str, Any]]:
    """Poll every replica's metrics until each reports ``backend``; (seconds it took, last readings)."""
    t0 = time.monotonic()
    pending = dict(replicas)
    readings: dict[str, Any] = {}
    while True:
        for url, client in list(pending.items()):
            readings[url] = _backends(client)
            if readings[url].get(backend) == 1.0:
                del pending[url]
        took = time.monotonic() - t0
        if not pending or took > timeout_s:
            return took, {"pending": sorted(pending), "readings": readings}
        time.sleep(0.1)


def _redis_answers(url: str | None) -> bool:
    if not url:
        return True
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@pytest.fixture
def rl_replicas(target: Target, recorder: ExchangeRecorder) -> Iterator[dict[str, httpx.Client]]:
    """A recorded client per replica of the target."""
    clients = {url: recorder.client(url, timeout=target.request_timeout_s) for url in target.base_urls}
    try:
        yield clients
    finally:
        for c in clients.values():
            c.close()


@pytest.fixture
def rl_redis_restored(target: Target, rl_replicas: dict[str, httpx.Client]) -> Iterator[None]:
    """Whatever a scenario does to Redis, it runs again afterwards and every replica is back on it
    (note: a restarted Redis starts with empty quotas)."""
    stack = target.stack
    if stack is None or not target.controllable:
        skips.not_applicable(f"{target.name}: needs control of the target's Redis")
    yield
    stack.resume_redis()  # wakes a paused server; nothing happens to a running or dead one
    if not _redis_answers(target.redis_url):
        stack.restart_redis()
    took, state = _wait_backend(rl_replicas, "redis", timeout_s=15)
    assert not state["pending"], f"after restoring Redis, replicas still off it after {took:.1f} s: {state}"


@given("the rate limiter of every replica is on Redis")
def _(rl_redis_restored: None, rl_replicas: dict[str, httpx.Client], recorder: ExchangeRecorder) -> None:
    _, state = _wait_backend(rl_replicas, "redis", timeout_s=5)
    recorder.note("backend_before", state["readings"])
    assert not state["pending"], f"replicas not on the Redis limiter: {state}"


def _outage_executes(
    target: Target, recorder: ExchangeRecorder, dev: Credential, per_replica: int = 3
) -> list[Hit]:
    urls = target.base_urls
    return asyncio.run(
        parallel(
            recorder,
            dev,
            urls,
            per_replica * len(urls),
            endpoint="/actions/execute",
            timeout_s=OUTAGE_CLIENT_TIMEOUT_S,
            t0=time.monotonic(),
        )
    )


def _outage(target: Target, recorder: ExchangeRecorder, dev: Credential, note: str, how: str) -> list[Hit]:
    """Break Redis as ``how`` says, send executes to every replica, and record what each got."""
    assert target.stack is not None
    if note == "redis_hung":
        target.stack.pause_redis()
    else:
        target.stack.kill_redis()
    hits = _outage_executes(target, recorder, dev)
    recorder.note(
        note,
        {
            "how": how,
            "requests": [h.row() for h in hits],
            "max_latency_ms": round(max(h.elapsed_s for h in hits) * 1000, 1),
        },
    )
    return hits


@when("Redis hangs and executes are sent to every replica", target_fixture="rl_outage")
def _(target: Target, rl_redis_restored: None, dev: Credential, recorder: ExchangeRecorder) -> list[Hit]:
    return _outage(target, recorder, dev, "redis_hung", "SIGSTOP (pause_redis)")


@when("Redis is killed and executes are sent to every replica", target_fixture="rl_outage")
def _(target: Target, rl_redis_restored: None, dev: Credential, recorder: ExchangeRecorder) -> list[Hit]:
    return _outage(target, recorder, dev, "redis_killed", "SIGKILL (kill_redis)")


def _succeeded(hits: list[Hit], bound_s: float | None) -> None:
    problems = []
    for h in hits:
        if h.error is not None:
            problems.append(f"{h.replica}: no answer ({h.error})")
        elif h.status != 200:
            problems.append(
                f"{h.replica}: {h.status} {h.response.text[:160] if h.response is not None else ''}"
            )
        elif bound_s is not None and h.elapsed_s > bound_s:
            problems.append(f"{h.replica}: answered after {h.elapsed_s:.2f} s (bound {bound_s:g} s)")
    check_all(problems, "executes failed or stalled while Redis was away")


@then(parsers.parse("every execute succeeds within {seconds:g} seconds, none with a 5xx"))
def _(rl_outage: list[Hit], recorder: ExchangeRecorder, seconds: float) -> None:
    recorder.note(
        "latency_bound",
        {
            "bound_s": seconds,
            "max_latency_s": round(max(h.elapsed_s for h in rl_outage), 3),
            "why": "Redis calls are bounded at 250 ms connect + 250 ms socket (reference stack); the bound "
            "adds margin for the request's own work on a noisy machine and stays far below the 10 s a "
            "Redis client without timeouts waits",
        },
    )
    _succeeded(rl_outage, seconds)


@then("every execute succeeds, none with a 5xx")
def _(rl_outage: list[Hit]) -> None:
    _succeeded(rl_outage, None)


@then("every replica's rate limiter has fallen back to the in-process limiter")
def _(rl_replicas: dict[str, httpx.Client], recorder: ExchangeRecorder) -> None:
    _, state = _wait_backend(rl_replicas, "memory", timeout_s=1)
    recorder.note("backend_during_outage", state["readings"])
    assert not state["pending"], f"replicas not on the in-process limiter while Redis is away: {state}"


@then("the fallback's X-RateLimit-Reset is epoch seconds within one window, as Redis's is")
def _(rl_outage: list[Hit], target: Target, recorder: ExchangeRecorder) -> None:
    """docs/service.md: X-RateLimit-Reset is epoch seconds on admitted and refused executes alike -- the
    in-process fallback included (a fallback that stamps its own monotonic clock sends a small number,
    which reads as a reset hours away)."""
    assert target.rate_limit is not None
    window_s = target.rate_limit.window_s
    wrong, seen = [], []
    for h in rl_outage:
        if h.response is None:
            continue
        field = h.rl.reset  # the oracle's reading, cached on the hit
        seen.append({"replica": h.replica, "reset": field.raw})
        if not field.ok or field.value is None:
            wrong.append(f"{h.replica}: X-RateLimit-Reset {field.describe()}")
            continue
        m = field.value
        if m.kind != "epoch" or not (h.sent_at - 1 <= m.at <= h.received_at + window_s + 1):
            wrong.append(
                f"{h.replica}: X-RateLimit-Reset {field.raw} read as {m.kind}, {m.delta:+.1f} s from now; "
                f"expected epoch seconds within the {window_s} s window"
            )
    recorder.note("fallback_reset", seen)
    check_all(wrong, "the fallback limiter's X-RateLimit-Reset")


@when("Redis answers again", target_fixture="rl_redis_back_at")
def _(target: Target) -> float:
    assert target.stack is not None
    target.stack.resume_redis()
    return time.monotonic()


@when("Redis is started again", target_fixture="rl_redis_back_at")
def _(target: Target) -> float:
    assert target.stack is not None
    target.stack.restart_redis()  # returns once it answers PING (with empty quotas)
    return time.monotonic()


@then(parsers.parse("every replica's rate limiter is back on Redis within {seconds:g} seconds"))
def _(
    rl_redis_back_at: float, rl_replicas: dict[str, httpx.Client], recorder: ExchangeRecorder, seconds: float
) -> None:
    _, state = _wait_backend(rl_replicas, "redis", timeout_s=seconds + 1)
    took = time.monotonic() - rl_redis_back_at if not state["pending"] else None
    recorder.note(
        "redis_recovery",
        {"seconds": round(took, 3) if took is not None else None, "bound_s": seconds, **state},
    )
    assert took is not None and took <= seconds, (
        f"the rate limiter was not back on Redis on every replica within {seconds:g} s: {state}"
    )
