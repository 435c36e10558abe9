"""The building blocks of gate/proof/catalogue.py: each takes one injection point of the reference service
(app factory argument, dependency override, key ring, delivery client hook, ASGI wrapper) and bends it
the way a hardening sprint plausibly gets it wrong.

Nothing here is reachable from a service setting: only :func:`gate.proof.catalogue.build_app` (test-only,
``python -m gate.stack.relay --defect NAME``) composes these parts into a running relay.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.audit import AuditLog
from service.auth import Principal
from service.config import WORKSPACE_RE, Settings
from service.deps import get_admin, get_principal
from service.errors import Problem
from service.headers import profile_headers
from service.limiter import Decision, FallbackRateLimiter, build_limiter
from service.signing import standard_signature

Headers = list[tuple[bytes, bytes]]
Wrap = Callable[[ASGIApp, Settings], ASGIApp]
DeliveryHook = Callable[[httpx.Request], Awaitable[None]]

# -- ASGI wrappers: a response-start editor ------------------------------------------------------------


def edit_response(edit: Callable[[int, Headers], Headers]) -> Wrap:
    """Wrap the app so that ``edit(status, headers)`` rewrites every response's headers on the way out
    (outside the security-header middleware: what a proxy or an outer layer would do)."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            async def send2(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = edit(int(message["status"]), list(message.get("headers", ())))
                await send(message)

            await app(scope, receive, send2 if scope["type"] == "http" else send)

        return wrapped

    return wrap


def _security_names() -> set[bytes]:
    names: set[bytes] = set()
    for profile in ("strict", "seed"):
        names |= {k.lower().encode() for k in profile_headers(profile)}
    return names


def strip_security_when(pred: Callable[[int], bool]) -> Wrap:
    names = _security_names()
    return edit_response(lambda status, h: [(k, v) for k, v in h if k not in names] if pred(status) else h)


def replace_header(name: bytes, value: bytes, when: Callable[[int], bool] = lambda s: True) -> Wrap:
    def edit(status: int, headers: Headers) -> Headers:
        if not when(status):
            return headers
        return [(k, v) for k, v in headers if k != name] + [(name, value)]

    return edit_response(edit)


def drop_header(name: bytes, when: Callable[[int], bool]) -> Wrap:
    return edit_response(lambda s, h: [(k, v) for k, v in h if k.lower() != name] if when(s) else h)


def append_header(name: bytes, value: bytes, when: Callable[[int], bool]) -> Wrap:
    """A second copy of ``name`` next to whatever is there: a layer that appends instead of replacing."""
    return edit_response(lambda s, h: [*h, (name, value)] if when(s) else h)


LEAKS = [(b"server", b"uvicorn"), (b"x-powered-by", b"FastAPI")]


def retry_after_unrounded() -> Wrap:
    """A 429's Retry-After written as the seconds left to X-RateLimit-Reset with one decimal ("1.4"):
    the rounding up to whole seconds forgotten (RFC 9110's delay-seconds are whole seconds)."""

    def edit(status: int, headers: Headers) -> Headers:
        reset = next((v for k, v in headers if k == b"x-ratelimit-reset"), None)
        if status != 429 or reset is None:
            return headers
        seconds = f"{max(0.1, int(reset) - time.time()):.1f}".encode()
        return [(k, v) for k, v in headers if k != b"retry-after"] + [(b"retry-after", seconds)]

    return edit_response(edit)


def ratelimit_policy_unquoted() -> Wrap:
    """RateLimit and RateLimit-Policy name their policy as a bare Token (``workspace;q=10;w=3``: the
    quotes forgotten), not the structured-field String the current draft requires."""
    fields = (b"ratelimit", b"ratelimit-policy")
    return edit_response(lambda s, h: [(k, v.replace(b'"', b"") if k in fields else v) for k, v in h])


# What Swagger UI needs (its bundle from jsDelivr, an inline bootstrap script): the CSP someone writes
# to make /docs work, shipped on every response of the API.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com"
)

# -- limiter wrappers ------------------------------------------------------------------------------


class _DecisionRewriter:
    def __init__(self, inner: FallbackRateLimiter, rewrite: Callable[[Decision], Decision]) -> None:
        self.inner = inner
        self.rewrite = rewrite

    @property
    def backend(self) -> str:
        return self.inner.backend

    async def hit(self, workspace: str) -> Decision:
        return self.rewrite(await self.inner.hit(workspace))

    async def aclose(self) -> None:
        await self.inner.aclose()


def off_by_one(settings: Settings, on_change: Callable[[str], None]) -> Any:
    # counts against limit + 1 but advertises the configured limit: the classic `<=` vs `<`
    wider = settings.model_copy(update={"rate_limit_exec_per_min": settings.rate_limit_exec_per_min + 1})
    inner = build_limiter(wider, on_backend_change=on_change)
    limit = settings.rate_limit_exec_per_min
    return _DecisionRewriter(
        inner,
        lambda d: dataclasses.replace(d, limit=limit, remaining=max(0, d.remaining - 1) if d.allowed else 0),
    )


def fails_closed(settings: Settings, on_change: Callable[[str], None]) -> Any:
    inner = build_limiter(settings, on_backend_change=on_change)

    def rewrite(d: Decision) -> Decision:
        if d.backend != "redis":
            raise Problem(503, "rate limiter unavailable")
        return d

    return _DecisionRewriter(inner, rewrite)


class _IncrThenExpire:
    """Stands in for the limiter's one atomic Lua call: ``INCR``, then ``PEXPIRE`` as a second command
    sent only on a window's first hit, and nothing that repairs a counter which missed it (the reference
    script re-arms any key whose PTTL is negative).

    The second command is lost when a replica dies, is restarted or times out between the two; that
    moment is modelled here by the ``PEXPIRE`` never arriving, so what the gate must notice is exactly
    the aftermath in production: a counter without a TTL, refusing its workspace for good.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def __call__(self, *, keys: Sequence[str], args: Sequence[int]) -> int:
        count = int(await self.client.incr(keys[0]))
        # `if count == 1: PEXPIRE keys[0] args[0]` would follow as its own round trip: the lost one
        return count


def incr_then_expire(settings: Settings, on_change: Callable[[str], None]) -> Any:
    limiter = build_limiter(settings, on_backend_change=on_change)
    if limiter.redis is not None:
        # everything else (key scheme, bounds, fallback) stays the reference limiter's
        limiter.redis._script = _IncrThenExpire(limiter.redis.client)  # type: ignore[assignment]
    return limiter


# -- dependency overrides and the key ring ---------------------------------------------------------


def workspace_from_header() -> dict[Any, Any]:
    async def principal(request: Request) -> Principal:
        p = await get_principal(request)
        claimed = request.headers.get("x-workspace-id", "")
        # "trust the client's workspace header when it looks like a workspace"
        if WORKSPACE_RE.match(claimed):
            return dataclasses.replace(p, workspace=claimed)
        return p

    return {get_principal: principal}


def admin_check_missing() -> dict[Any, Any]:
    async def admin(request: Request) -> Principal:
        return await get_principal(request)

    return {get_admin: admin}


def dev_reads_own_workspace_audit() -> dict[Any, Any]:
    # "developers may see their own workspace's trail": a dev key passes the admin check when its
    # request filters the audit log to its own workspace (an admin-only endpoint, per docs/service.md)
    async def admin(request: Request) -> Principal:
        principal = await get_principal(request)
        if principal.is_admin or request.query_params.get("workspace") == principal.workspace:
            return principal
        raise Problem(403, "this endpoint needs an admin key")

    return {get_admin: admin}


def any_key_is_dev(app: FastAPI) -> None:
    # the key ring answers "dev of workspace default" for any token it does not know; every auth path
    # (dependencies and the auth-before-body middleware) shares this one ring
    keyring = app.state.relay.keyring
    lookup = keyring.lookup

    def lenient(token: str) -> Principal | None:
        return lookup(token) or Principal(role="dev", workspace="default", key_id="unknown")

    keyring.lookup = lenient


# -- delivery hooks (an httpx request event hook edits what goes on the wire) -----------------------


def _keys(settings: Settings) -> list[bytes]:
    keys = list(settings.signing_keys)
    if not keys:
        raise RuntimeError("this defect needs ACTIONS_SIGNING_SECRET")
    return keys


def reserialised_signature(settings: Settings) -> DeliveryHook:
    key = _keys(settings)[0]

    async def hook(request: httpx.Request) -> None:
        # signs json.dumps(json.loads(body)) — default separators, so not the bytes that are sent
        canonical = json.dumps(json.loads(request.content)).encode()
        request.headers["X-Signature"] = "sha256=" + hmac.new(key, canonical, hashlib.sha256).hexdigest()

    return hook


FIXED_REQUEST_ID = str(uuid.UUID(int=0x5EED))


def request_id_reused(settings: Settings) -> DeliveryHook:
    async def hook(request: httpx.Request) -> None:
        request.headers["X-Request-ID"] = FIXED_REQUEST_ID

    return hook


def timestamp_not_signed(settings: Settings) -> DeliveryHook:
    key = _keys(settings)[0]

    async def hook(request: httpx.Request) -> None:
        mac = hmac.new(key, request.content, hashlib.sha256).digest()
        request.headers["webhook-signature"] = "v1," + base64.b64encode(mac).decode()

    return hook


def timestamp_in_milliseconds(settings: Settings) -> DeliveryHook:
    keys = _keys(settings)

    async def hook(request: httpx.Request) -> None:
        # signed consistently over id.<milliseconds>.body: the HMAC checks out, the clock check cannot
        millis = time.time_ns() // 1_000_000
        request.headers["webhook-timestamp"] = str(millis)
        webhook_id = request.headers["webhook-id"]
        request.headers["webhook-signature"] = standard_signature(keys, webhook_id, millis, request.content)

    return hook


def signs_with_primary_only(settings: Settings) -> DeliveryHook:
    keys = _keys(settings)

    async def hook(request: httpx.Request) -> None:
        # webhook-signature made like X-Signature, with the primary secret alone: receivers that still
        # hold only the previous secret reject every delivery for the length of the rotation
        timestamp = int(request.headers["webhook-timestamp"])
        webhook_id = request.headers["webhook-id"]
        request.headers["webhook-signature"] = standard_signature(
            keys[:1], webhook_id, timestamp, request.content
        )

    return hook


# -- audit log variants ----------------------------------------------------------------------------


class AuditSwallowsFailure(AuditLog):
    """begin() that carries on when the database is down: the webhook goes out unaudited."""

    async def begin(self, **kwargs: Any) -> int:
        try:
            return await super().begin(**kwargs)
        except Exception:
            return -1

    async def complete(self, row_id: int, **kwargs: Any) -> None:
        if row_id >= 0:
            await super().complete(row_id, **kwargs)


class AuditOnlySuccesses(AuditLog):
    """Writes the audit row only once the delivery succeeded: failed deliveries leave no trace."""

    _pending: dict[int, dict[str, Any]]
    _tokens: itertools.count[int]

    async def begin(self, **kwargs: Any) -> int:
        self.__dict__.setdefault("_pending", {})
        # a counter, not len(_pending): concurrent executes must never share a token
        token = next(self.__dict__.setdefault("_tokens", itertools.count(1)))
        self._pending[token] = kwargs
        return token

    async def complete(self, row_id: int, **kwargs: Any) -> None:
        started = self._pending.pop(row_id)
        if kwargs.get("status") == "ok":
            real = await super().begin(**started)
            await super().complete(real, **kwargs)


class AuditOkBelow500(AuditLog):
    """Completes a row ``ok`` whenever the receiver answered below 500 ("a 4xx is the receiver's
    problem, not ours"): a delivery refused for good with a 410 is 502 to the caller and ``ok`` on file."""

    async def complete(self, row_id: int, **kwargs: Any) -> None:
        http_status = kwargs.get("http_status")
        if http_status is not None and http_status < 500:
            kwargs["status"] = "ok"
        await super().complete(row_id, **kwargs)


_RATE_LIMIT_FIELDS = frozenset(
    {b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset", b"ratelimit", b"ratelimit-policy"}
)


def rate_limit_headers_dropped_on_502() -> Wrap:
    """The 502 of a failed delivery is built as a fresh error response ("it is an error, not a rate
    decision"), so it carries none of the X-RateLimit and RateLimit fields its execute spent quota for."""
    return edit_response(
        lambda status, headers: (
            headers if status != 502 else [(k, v) for k, v in headers if k.lower() not in _RATE_LIMIT_FIELDS]
        )
    )


class AuditMintsItsOwnId(AuditLog):
    """Records an id the audit layer makes up instead of the request's: the row exists, but nobody can
    find it from a delivery's X-Request-ID or the relay's logs."""

    async def begin(self, **kwargs: Any) -> int:
        return await super().begin(**{**kwargs, "request_id": uuid.uuid4()})


def audit_log(cls: type[AuditLog]) -> Callable[[Settings], AuditLog]:
    """A factory of ``cls`` configured exactly as the app would configure its own AuditLog."""

    def make(settings: Settings) -> AuditLog:
        assert settings.database_url is not None
        return cls(
            settings.database_url.get_secret_value(),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout_s=settings.db_timeout_s,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )

    return make
