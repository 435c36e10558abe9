"""The per-workspace rate limiter against fakeredis (Lua) and the real bundled redis-server.

Time is an injected clock wherever a window matters, so nothing here waits for a real minute; the
fallback tests hang or kill a real server and only poll (with deadlines) for the re-probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import fakeredis
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gate.stack.procs import free_port
from gate.stack.redis_server import EmbeddedRedis
from service.config import Settings
from service.limiter import (
    Decision,
    FallbackRateLimiter,
    InProcessRateLimiter,
    RedisRateLimiter,
    RedisUnavailable,
    build_limiter,
    rate_limit_headers,
)

T = TypeVar("T")
ClientFactory = Callable[[], aioredis.Redis]

WINDOW = 60
WINDOW_START = WINDOW * 28_333_334  # an epoch minute (Nov 2023)
T0 = WINDOW_START + 15.5  # 44.5 s left in the window
RESET = WINDOW_START + WINDOW


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def new_workspace() -> str:
    """Unique per call: the session redis-server is shared by every test."""
    return f"ws-{uuid.uuid4().hex[:12]}"


def real_client(url: str, timeout: float = 2.0) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def fast_settings(redis_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "rate_limit_exec_per_min": 5,
        "redis_connect_timeout_ms": 100,
        "redis_socket_timeout_ms": 100,
        "redis_reprobe_max_s": 0.2,
    }
    return Settings(_env_file=None, **{**values, **overrides})


@pytest.fixture(params=["fakeredis", pytest.param("redis-server", marks=pytest.mark.stack)])
def make_client(request: pytest.FixtureRequest) -> ClientFactory:
    """Clients are made inside the test's event loop; all clients of one factory share one server."""
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()
        return lambda: fakeredis.aioredis.FakeRedis(server=server)
    url = request.getfixturevalue("redis_server").url
    return lambda: real_client(url)


@contextlib.asynccontextmanager
async def redis_limiter(
    make_client: ClientFactory, *, limit: int = 5, clock: FakeClock | None = None
) -> AsyncIterator[RedisRateLimiter]:
    rl = RedisRateLimiter(
        make_client(), limit=limit, window_s=WINDOW, clock=clock or FakeClock(), timeout_s=2
    )
    try:
        yield rl
    finally:
        await rl.aclose()


async def poll(check: Callable[[], bool], *, within: float) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# -- fixed window in Redis (fakeredis and redis-server) ----------------------------------------------------


def test_fixed_window_admits_exactly_limit_then_refuses(make_client: ClientFactory) -> None:
    ws = new_workspace()

    async def scenario() -> list[Decision]:
        async with redis_limiter(make_client, limit=5) as rl:
            return [await rl.hit(ws) for _ in range(8)]

    decisions = run(scenario())
    for i, d in enumerate(decisions[:5]):
        assert d == Decision(True, 5, 4 - i, RESET, 0, "redis", WINDOW)
    for d in decisions[5:]:
        assert d == Decision(False, 5, 0, RESET, 45, "redis", WINDOW)  # ceil(44.5)
        assert d.retry_after == max(1, math.ceil(d.reset_at - T0))


def test_retry_after_is_at_least_one_second_at_the_window_edge(make_client: ClientFactory) -> None:
    ws, clock = new_workspace(), FakeClock(RESET - 0.2)

    async def scenario() -> Decision:
        async with redis_limiter(make_client, limit=1, clock=clock) as rl:
            await rl.hit(ws)
            return await rl.hit(ws)

    refused = run(scenario())
    assert not refused.allowed
    assert refused.retry_after == 1 == max(1, math.ceil(refused.reset_at - clock.t))


def test_window_rollover_admits_again(make_client: ClientFactory) -> None:
    ws, clock = new_workspace(), FakeClock()

    async def scenario() -> tuple[Decision, Decision]:
        async with redis_limiter(make_client, limit=2, clock=clock) as rl:
            for _ in range(3):
                await rl.hit(ws)
            refused = await rl.hit(ws)
            clock.advance(refused.retry_after)
            return refused, await rl.hit(ws)

    refused, next_window = run(scenario())
    assert not refused.allowed
    assert next_window == Decision(True, 2, 1, RESET + WINDOW, 0, "redis", WINDOW)


def test_workspaces_are_isolated(make_client: ClientFactory) -> None:
    noisy, quiet = new_workspace(), new_workspace()

    async def scenario() -> Decision:
        async with redis_limiter(make_client, limit=3) as rl:
            for _ in range(10):
                await rl.hit(noisy)
            return await rl.hit(quiet)

    assert run(scenario()) == Decision(True, 3, 2, RESET, 0, "redis", WINDOW)


def test_every_key_has_a_ttl_and_remaining_never_goes_negative(make_client: ClientFactory) -> None:
    workspaces, clock = [new_workspace() for _ in range(3)], FakeClock()

    async def scenario() -> list[int]:
        async with redis_limiter(make_client, limit=4, clock=clock) as rl:
            for _ in range(3):  # three windows
                for ws in workspaces:
                    for _ in range(10):
                        assert (await rl.hit(ws)).remaining >= 0
                clock.advance(WINDOW)
            keys = [k for ws in workspaces async for k in rl.client.scan_iter(match=f"rl:{ws}:*")]
            assert len(keys) == 9
            return [await rl.client.pttl(k) for k in keys]

    for pttl in run(scenario()):
        # the newest window's keys expire at most (window left + margin) from the fake "now"
        assert 0 < pttl <= (3 * WINDOW + 44.5 + 2) * 1000


def test_a_key_found_without_ttl_gets_one(make_client: ClientFactory) -> None:
    ws = new_workspace()
    key = f"rl:{ws}:{int(T0 // WINDOW)}"

    async def scenario() -> tuple[Decision, int, int]:
        async with redis_limiter(make_client, limit=5) as rl:
            await rl.client.set(key, 3)  # e.g. written by an older, non-atomic release
            assert await rl.client.pttl(key) == -1
            d = await rl.hit(ws)
            return d, await rl.client.pttl(key), int(await rl.client.get(key) or 0)

    decision, pttl, count = run(scenario())
    assert decision.remaining == 1 and count == 4
    assert 0 < pttl <= (44.5 + 2) * 1000


@pytest.mark.parametrize(
    "workspace", ["a:b", "rl:*", "a*", "a?", "x" * 64, "", "Acme", "acme\n", "ws\r\nFLUSHALL", "-lead"]
)
def test_invalid_workspace_ids_never_reach_redis(make_client: ClientFactory, workspace: str) -> None:
    async def scenario() -> None:
        async with redis_limiter(make_client) as rl:
            keys_before = await rl.client.dbsize()
            with pytest.raises(ValueError, match="workspace id must match"):
                await rl.hit(workspace)
            fb = FallbackRateLimiter(rl, InProcessRateLimiter(limit=5, window_s=WINDOW))
            with pytest.raises(ValueError):
                await fb.hit(workspace)
            assert await rl.client.dbsize() == keys_before

    run(scenario())
    with pytest.raises(ValueError):
        InProcessRateLimiter(limit=5, window_s=WINDOW).hit(workspace)


def test_concurrent_hits_admit_exactly_the_limit(make_client: ClientFactory) -> None:
    ws, limit = new_workspace(), 10

    async def scenario() -> list[Decision]:
        async with redis_limiter(make_client, limit=limit) as rl:
            return await asyncio.gather(*(rl.hit(ws) for _ in range(3 * limit)))

    decisions = run(scenario())
    assert sum(d.allowed for d in decisions) == limit
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(limit))


def test_two_replicas_share_one_limit(make_client: ClientFactory) -> None:
    """Two clients (two connection pools, like two service replicas) against one server."""
    ws, limit = new_workspace(), 10

    async def scenario() -> list[Decision]:
        async with redis_limiter(make_client, limit=limit) as a, redis_limiter(make_client, limit=limit) as b:
            return await asyncio.gather(*(r.hit(ws) for _ in range(3 * limit // 2) for r in (a, b)))

    decisions = run(scenario())
    assert len(decisions) == 3 * limit
    assert sum(d.allowed for d in decisions) == limit


def test_an_error_reply_is_redis_unavailable(make_client: ClientFactory) -> None:
    ws = new_workspace()

    async def scenario() -> None:
        async with redis_limiter(make_client) as rl:
            await rl.client.set(f"rl:{ws}:{int(T0 // WINDOW)}", "not a number")
            with pytest.raises(RedisUnavailable):
                await rl.hit(ws)

    run(scenario())


def test_fake_redis_fixture_runs_the_lua_script(fake_redis: fakeredis.aioredis.FakeRedis) -> None:
    async def scenario() -> Decision:
        rl = RedisRateLimiter(fake_redis, limit=2, window_s=WINDOW, clock=FakeClock(), timeout_s=2.0)
        try:
            return await rl.hit("acme")
        finally:
            await rl.aclose()

    assert run(scenario()) == Decision(True, 2, 1, RESET, 0, "redis", WINDOW)


def test_longest_valid_workspace_is_accepted() -> None:
    ws = "a" * 63
    assert InProcessRateLimiter(limit=1, window_s=WINDOW).hit(ws).allowed


# -- the real server only --------------------------------------------------------------------------------


def _commandstats(raw: dict[str, Any]) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in raw.items()}


# Commands the Lua script runs itself; INFO commandstats counts them beside the client's EVALSHA.
SCRIPT_INTERNAL = {"incr", "pttl", "pexpire"}


@pytest.mark.stack
def test_exactly_one_redis_command_per_decision(fresh_redis: EmbeddedRedis) -> None:
    """Counted twice: by the server (INFO commandstats) and at the client (every command it sends)."""
    ws, n = new_workspace(), 25
    sent: list[str] = []

    async def scenario() -> dict[str, int]:
        observer = real_client(fresh_redis.url)
        client = real_client(fresh_redis.url)
        execute = client.execute_command

        async def counting_execute(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]).lower())
            return await execute(*args, **options)

        client.execute_command = counting_execute  # type: ignore[method-assign]
        async with redis_limiter(lambda: client, limit=10) as rl:
            await rl.hit(ws)  # warm-up: connection handshake and SCRIPT LOAD happen once
            sent.clear()
            await observer.config_resetstat()
            for _ in range(n):
                await rl.hit(ws)
            stats = _commandstats(await observer.info("commandstats"))
        await observer.aclose()
        return stats

    stats = run(scenario())
    assert sent == ["evalsha"] * n
    from_clients = {k: v for k, v in stats.items() if k not in SCRIPT_INTERNAL | {"config", "info"}}
    assert from_clients == {"evalsha": n}
    assert stats["incr"] == n  # and each decision counted exactly once


@pytest.mark.stack
def test_fallback_on_connection_refused() -> None:
    changes: list[str] = []
    fb = build_limiter(fast_settings(f"redis://127.0.0.1:{free_port()}/0"), on_backend_change=changes.append)
    assert fb.redis is not None
    redis_calls = 0
    real_hit = fb.redis.hit

    async def counting_hit(workspace: str) -> Decision:
        nonlocal redis_calls
        redis_calls += 1
        return await real_hit(workspace)

    fb.redis.hit = counting_hit  # type: ignore[method-assign]

    async def scenario() -> list[Decision]:
        try:
            return [await fb.hit("acme") for _ in range(7)]
        finally:
            await fb.aclose()

    decisions = run(scenario())
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert {d.backend for d in decisions} == {"memory"}
    assert fb.backend == "memory" and changes == ["memory"]
    assert redis_calls == 1, "while Redis is down, requests must not wait on it"


@pytest.mark.stack
def test_fallback_on_timeout_then_reprobe_switches_back(fresh_redis: EmbeddedRedis) -> None:
    changes: list[str] = []
    fb = build_limiter(fast_settings(fresh_redis.url), on_backend_change=changes.append)
    ws = new_workspace()

    async def scenario() -> None:
        try:
            assert (await fb.hit(ws)).backend == "redis"
            fresh_redis.pause()
            try:
                started = time.monotonic()
                hung = await fb.hit(ws)
                elapsed = time.monotonic() - started
                assert hung.allowed and hung.backend == "memory"
                assert elapsed < 1.0, f"a hung Redis held the request for {elapsed:.2f} s (timeout 100 ms)"
                assert fb.backend == "memory" and changes == ["memory"]
                await asyncio.sleep(0.3)  # let the re-probe fail against the hung server at least once
                assert fb.backend == "memory"
            finally:
                fresh_redis.resume()
            assert await poll(lambda: fb.backend == "redis", within=5), "re-probe never switched back"
            assert changes == ["memory", "redis"]
            assert (await fb.hit(ws)).backend == "redis"
        finally:
            await fb.aclose()

    run(scenario())


@pytest.mark.stack
def test_reprobe_recovers_after_a_crash_and_restart(fresh_redis: EmbeddedRedis) -> None:
    """Old pooled connections are dead and the restarted server has forgotten the Lua script."""
    changes: list[str] = []
    fb = build_limiter(fast_settings(fresh_redis.url), on_backend_change=changes.append)
    ws = new_workspace()

    async def scenario() -> None:
        try:
            assert (await fb.hit(ws)).backend == "redis"
            fresh_redis.kill()
            assert (await fb.hit(ws)).backend == "memory"
            fresh_redis.restart()
            assert await poll(lambda: fb.backend == "redis", within=5)
            after = await fb.hit(ws)
            assert after.backend == "redis" and after.remaining == 4  # the counter died with the server
        finally:
            await fb.aclose()

    run(scenario())
    assert changes == ["memory", "redis"]


# -- FallbackRateLimiter without Redis, and its hooks -----------------------------------------------------


def test_without_redis_url_the_limiter_is_memory_only() -> None:
    fb = build_limiter(fast_settings(None))
    assert fb.redis is None and fb.backend == "memory"

    async def scenario() -> Decision:
        try:
            return await fb.hit("acme")
        finally:
            await fb.aclose()

    assert run(scenario()).backend == "memory"


def test_build_limiter_bounds_every_redis_call() -> None:
    fb = build_limiter(fast_settings("redis://127.0.0.1:6399/0"))
    assert fb.redis is not None
    kwargs = fb.redis.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.1
    assert kwargs["retry"].get_retries() == 0, "redis-py's default retry policy multiplies the timeout"
    assert kwargs.get("health_check_interval", 0) == 0
    assert fb.redis.timeout_s == pytest.approx(0.2)
    run(fb.aclose())


@pytest.mark.parametrize("failure", [RedisUnavailable("down"), RuntimeError("a client bug")])
def test_fails_open_even_with_a_broken_hook(failure: Exception, caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        async def hit(self, workspace: str) -> Decision:
            raise failure

        async def ping(self) -> None:
            raise RedisUnavailable("still down")

        async def aclose(self) -> None:
            pass

    def broken_hook(backend: str) -> None:
        raise RuntimeError("metrics are down too")

    fb = FallbackRateLimiter(
        Down(),  # type: ignore[arg-type]
        InProcessRateLimiter(limit=5, window_s=WINDOW),
        reprobe_max_s=0.05,
        on_backend_change=broken_hook,
    )

    async def scenario() -> Decision:
        try:
            return await fb.hit("acme")
        finally:
            await fb.aclose()

    assert run(scenario()).backend == "memory"
    assert "on_backend_change('memory') failed" in caplog.text


# -- in-process token bucket -----------------------------------------------------------------------------


def memory_limiter(limit: int = 6, *, clock: FakeClock, max_buckets: int = 1000) -> InProcessRateLimiter:
    return InProcessRateLimiter(
        limit=limit, window_s=WINDOW, clock=clock, wall_clock=clock, max_buckets=max_buckets
    )


def test_token_bucket_admits_a_burst_then_refills_steadily() -> None:
    clock = FakeClock()
    rl = memory_limiter(6, clock=clock)  # one token every 10 s
    burst = [rl.hit("acme") for _ in range(6)]
    assert [d.remaining for d in burst] == [5, 4, 3, 2, 1, 0]
    assert all(d.allowed and d.retry_after == 0 and d.backend == "memory" for d in burst)
    assert burst[-1].reset_at == math.ceil(T0 + 60)  # empty bucket: full again in one window

    refused = rl.hit("acme")
    assert not refused.allowed and refused.remaining == 0
    # the next token is 10 s away; reset_at is whole epoch seconds, so Retry-After rounds up past it
    assert refused.reset_at == math.ceil(T0 + 10)
    assert refused.retry_after == 11 == max(1, math.ceil(refused.reset_at - clock.t))

    clock.advance(9.9)
    assert not rl.hit("acme").allowed
    clock.advance(0.1)
    assert rl.hit("acme").allowed
    assert not rl.hit("acme").allowed

    clock.advance(10 * WINDOW)  # a long pause refills to capacity, not beyond
    assert [rl.hit("acme").allowed for _ in range(7)] == [True] * 6 + [False]


def test_token_bucket_isolates_workspaces() -> None:
    rl = memory_limiter(2, clock=FakeClock())
    assert [rl.hit("noisy").allowed for _ in range(5)] == [True, True, False, False, False]
    assert rl.hit("quiet").allowed and rl.hit("quiet").remaining == 0


def test_token_bucket_memory_is_bounded() -> None:
    clock = FakeClock()
    rl = memory_limiter(clock=clock, max_buckets=3)
    for i in range(10):
        rl.hit(f"ws-{i}")
    assert len(rl) == 3
    clock.advance(WINDOW)  # idle for a window = full again = nothing worth keeping
    rl.hit("ws-new")
    assert len(rl) == 1


def test_token_bucket_remaining_never_negative_and_retry_after_consistent() -> None:
    clock = FakeClock()
    rl = memory_limiter(3, clock=clock)
    for _ in range(50):
        d = rl.hit("acme")
        assert d.remaining >= 0
        if not d.allowed:
            assert d.retry_after >= 1 and d.retry_after == max(1, math.ceil(d.reset_at - clock.t))
        clock.advance(1.3)


# -- headers ---------------------------------------------------------------------------------------------


def test_headers_for_an_allowed_request() -> None:
    d = Decision(True, 60, 59, RESET, 0, "redis", 60)
    assert rate_limit_headers(d, now=T0) == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "59",
        "X-RateLimit-Reset": str(RESET),
        "RateLimit-Policy": '"workspace";q=60;w=60',
        "RateLimit": '"workspace";r=59;t=45',
    }


def test_headers_for_a_refused_request() -> None:
    d = Decision(False, 60, 0, RESET, 45, "memory", 60)
    assert rate_limit_headers(d) == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(RESET),
        "RateLimit-Policy": '"workspace";q=60;w=60',
        "RateLimit": '"workspace";r=0;t=45',
        "Retry-After": "45",
    }
