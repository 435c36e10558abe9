"""Per-workspace rate limiting (seed item 1): a fixed window in Redis, a token bucket in memory as fallback.

    FallbackRateLimiter          what the app holds; never raises for a backend failure (fails open)
     ├── RedisRateLimiter        shared across replicas: one atomic Lua call (EVALSHA) per decision
     └── InProcessRateLimiter    per process: used while Redis is unreachable, until a re-probe succeeds

Each returns a :class:`Decision`; :func:`rate_limit_headers` turns it into the seed's ``X-RateLimit-*``
headers plus the IETF draft ``RateLimit``/``RateLimit-Policy`` fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from service.config import WORKSPACE_RE

if TYPE_CHECKING:
    from service.config import Settings

log = logging.getLogger(__name__)

Backend = Literal["redis", "memory"]
Clock = Callable[[], float]
T = TypeVar("T")

# INCR and its expiry must be one atomic step: a crash between them would leave a counter without a TTL
# that refuses the workspace forever. The PTTL check also repairs a key that lost (or never had) its TTL.
_HIT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""
# Keys outlive their window by this much, so a replica whose clock runs slightly behind still finds
# the counter its peers are incrementing.
_TTL_MARGIN_MS = 2_000


class RedisUnavailable(Exception):
    """Redis did not answer correctly in time (refused, timed out, or replied with an error)."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one rate-limited request, with everything the response headers need."""

    allowed: bool
    limit: int
    remaining: int  # never negative
    reset_at: int  # epoch seconds: the window ends (Redis) / a token is available (memory)
    retry_after: int  # 0 when allowed; max(1, ceil(reset_at - now)) when refused
    backend: Backend
    window_s: int


def check_workspace(workspace: str) -> str:
    """Refuse a workspace id that could smuggle a key separator, a glob or an unbounded length into Redis."""
    # fullmatch: the pattern ends in ``$``, which re.match also lets through before a trailing newline
    if not isinstance(workspace, str) or not WORKSPACE_RE.fullmatch(workspace):
        raise ValueError(f"workspace id must match {WORKSPACE_RE.pattern}")
    return workspace


def _check_policy(limit: int, window_s: int) -> None:
    if limit < 1 or window_s < 1:
        raise ValueError("limit and window_s must be at least 1")


def _retry_after(reset_at: int, now: float) -> int:
    return max(1, math.ceil(reset_at - now))


class RedisRateLimiter:
    """Fixed window shared by every replica: key ``rl:{workspace}:{floor(now / window_s)}``.

    With the default 60 s window the index is the epoch minute, as in the seed. Every call is bounded
    by the client's socket timeouts and, as a hard stop, by ``timeout_s`` (asyncio.wait_for).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        limit: int,
        window_s: int,
        clock: Clock = time.time,
        timeout_s: float | None = None,
    ) -> None:
        _check_policy(limit, window_s)
        self.client = client
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self.timeout_s = timeout_s if timeout_s is not None else _client_timeout(client)
        # register_script sends EVALSHA and only falls back to SCRIPT LOAD on NOSCRIPT (first use or a
        # restarted server), so the steady state is exactly one command per decision.
        self._script = client.register_script(_HIT_SCRIPT)

    async def hit(self, workspace: str) -> Decision:
        """Count one request for ``workspace``; raise :class:`RedisUnavailable` if Redis cannot say."""
        check_workspace(workspace)
        now = self._clock()
        index = math.floor(now / self.window_s)
        reset_at = (index + 1) * self.window_s
        ttl_ms = max(1, math.ceil((reset_at - now) * 1000)) + _TTL_MARGIN_MS
        count = int(await self._bounded(self._script(keys=[f"rl:{workspace}:{index}"], args=[ttl_ms])))
        allowed = count <= self.limit
        return Decision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, self.limit - count),
            reset_at=reset_at,
            retry_after=0 if allowed else _retry_after(reset_at, now),
            backend="redis",
            window_s=self.window_s,
        )

    async def ping(self) -> None:
        """PING with the same bounds as a decision; raise :class:`RedisUnavailable` when it fails."""
        await self._bounded(self.client.ping())

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, timeout=self.timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            # RedisError also covers error replies (e.g. a non-integer under our key): fail open too.
            raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _client_timeout(client: aioredis.Redis) -> float:
    """Connect + read timeouts of the client: the worst a single call on a new connection may take."""
    kwargs = client.connection_pool.connection_kwargs
    parts = [kwargs.get("socket_connect_timeout"), kwargs.get("socket_timeout")]
    total = sum(p for p in parts if p)
    return total if total > 0 else 1.0


@dataclass
class _Bucket:
    tokens: float
    updated: float  # monotonic clock


class InProcessRateLimiter:
    """Token bucket per workspace: capacity ``limit``, refilled at ``limit / window_s`` tokens per second.

    Per process, so N replicas admit up to N times the limit while they run on it; it exists to keep
    serving (fail open, yet still bounded) while Redis is away. Memory is bounded: buckets idle long
    enough to be full again are dropped (a full bucket is the same as no bucket), and at most
    ``max_buckets`` are kept (least recently used go first).
    """

    def __init__(
        self,
        *,
        limit: int,
        window_s: int,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        max_buckets: int = 100_000,
    ) -> None:
        _check_policy(limit, window_s)
        self.limit = limit
        self.window_s = window_s
        self.rate = limit / window_s
        self.max_buckets = max_buckets
        self._clock = clock
        self._wall = wall_clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        # Decisions are quick and usually made on the event loop, but sync endpoints run in threads.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, workspace: str) -> Decision:
        check_workspace(workspace)
        with self._lock:
            now = self._clock()
            self._evict(now)
            bucket = self._buckets.pop(workspace, None) or _Bucket(tokens=float(self.limit), updated=now)
            self._buckets[workspace] = bucket  # most recently used at the end
            bucket.tokens = min(self.limit, bucket.tokens + max(0.0, now - bucket.updated) * self.rate)
            bucket.updated = now
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            tokens = bucket.tokens
        wall = self._wall()
        if allowed:
            # When the bucket is full again: the "reset" of the quota.
            reset_at = math.ceil(wall + (self.limit - tokens) / self.rate)
            retry_after = 0
        else:
            reset_at = math.ceil(wall + (1.0 - tokens) / self.rate)
            retry_after = _retry_after(reset_at, wall)
        return Decision(
            allowed=allowed,
            limit=self.limit,
            remaining=max(0, math.floor(tokens)),
            reset_at=reset_at,
            retry_after=retry_after,
            backend="memory",
            window_s=self.window_s,
        )

    def _evict(self, now: float) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if len(self._buckets) < self.max_buckets and now - oldest.updated < self.window_s:
                break
            self._buckets.popitem(last=False)


class FallbackRateLimiter:
    """Redis first; on any Redis failure, fail open to the in-process limiter until a re-probe succeeds.

    While Redis is down, requests go straight to memory (no per-request timeout) and one background task
    PINGs Redis with exponential backoff (``reprobe_initial_s`` doubling up to ``reprobe_max_s``).
    ``on_backend_change`` hears the new backend name on every switch (the app feeds a gauge with it).
    """

    def __init__(
        self,
        redis_limiter: RedisRateLimiter | None,
        memory_limiter: InProcessRateLimiter,
        *,
        reprobe_max_s: float = 2.0,
        reprobe_initial_s: float = 0.1,
        ping: Callable[[], Awaitable[object]] | None = None,
        on_backend_change: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis_limiter
        self.memory = memory_limiter
        self.reprobe_max_s = reprobe_max_s
        self.reprobe_initial_s = min(reprobe_initial_s, reprobe_max_s)
        self._ping = ping if ping is not None else (redis_limiter.ping if redis_limiter else None)
        self._on_change = on_backend_change
        self._redis_up = redis_limiter is not None
        self._probe: asyncio.Task[None] | None = None

    @property
    def backend(self) -> Backend:
        return "redis" if self._redis_up else "memory"

    async def hit(self, workspace: str) -> Decision:
        """A decision for ``workspace``. Raises only ValueError (a malformed workspace id)."""
        check_workspace(workspace)
        if self.redis is not None and self._redis_up:
            try:
                return await self.redis.hit(workspace)
            except RedisUnavailable as exc:
                self._mark_down(exc)
            except Exception as exc:
                # Not a failure we foresaw (a client bug, an odd reply): still no 5xx for rate limiting.
                log.exception("rate limiter: unexpected error from the Redis limiter")
                self._mark_down(exc)
        return self.memory.hit(workspace)

    async def aclose(self) -> None:
        """Stop re-probing and close the Redis client."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        if self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.aclose()

    def _mark_down(self, exc: BaseException) -> None:
        if not self._redis_up:  # concurrent failures: the first one already switched
            return
        self._redis_up = False
        log.warning("rate limiter: Redis unavailable (%s); failing open to the in-process limiter", exc)
        self._notify("memory")
        if self._ping is not None and (self._probe is None or self._probe.done()):
            self._probe = asyncio.get_running_loop().create_task(self._reprobe(), name="rate-limit-reprobe")

    async def _reprobe(self) -> None:
        assert self._ping is not None
        delay = self.reprobe_initial_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self._ping()
            except Exception as exc:
                log.debug("rate limiter: Redis re-probe failed (%s); next in %.2f s", exc, delay)
                delay = min(delay * 2, self.reprobe_max_s)
                continue
            self._redis_up = True
            log.warning("rate limiter: Redis answers again; back on the shared limiter")
            self._notify("redis")
            return

    def _notify(self, backend: str) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(backend)
        except Exception:
            # a broken metrics hook must not turn into a failed request
            log.exception("rate limiter: on_backend_change(%r) failed", backend)


def build_limiter(
    settings: Settings, *, on_backend_change: Callable[[str], None] | None = None
) -> FallbackRateLimiter:
    """The limiter the settings describe: Redis with in-process fallback; memory only without REDIS_URL."""
    limit, window_s = settings.rate_limit_exec_per_min, settings.rate_limit_window_s
    memory = InProcessRateLimiter(limit=limit, window_s=window_s)
    if not settings.redis_url:
        return FallbackRateLimiter(
            None, memory, reprobe_max_s=settings.redis_reprobe_max_s, on_backend_change=on_backend_change
        )
    connect_s = settings.redis_connect_timeout_ms / 1000
    socket_s = settings.redis_socket_timeout_ms / 1000
    client = aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=connect_s,
        socket_timeout=socket_s,
        # redis-py retries with backoff by default; a timeout must be one bounded wait, then fail open.
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )
    redis_limiter = RedisRateLimiter(client, limit=limit, window_s=window_s, timeout_s=connect_s + socket_s)
    return FallbackRateLimiter(
        redis_limiter,
        memory,
        reprobe_max_s=settings.redis_reprobe_max_s,
        on_backend_change=on_backend_change,
    )


def rate_limit_headers(decision: Decision, *, now: float | None = None) -> dict[str, str]:
    """Response headers for a decision: the seed's ``X-RateLimit-*``, the IETF draft fields, Retry-After.

    ``RateLimit``'s ``t`` is the seconds until ``reset_at`` (``Retry-After`` when refused); ``now``
    defaults to the wall clock.
    """
    if decision.allowed:
        now = time.time() if now is None else now
        reset_in = max(0, math.ceil(decision.reset_at - now))
    else:
        reset_in = decision.retry_after
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_at),
        # draft-ietf-httpapi-ratelimit-headers-08..10: structured-field lists keyed by policy name
        "RateLimit-Policy": f'"workspace";q={decision.limit};w={decision.window_s}',
        "RateLimit": f'"workspace";r={decision.remaining};t={reset_in}',
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, decision.retry_after))
    return headers
