"""Deliberate defects of the reference service: how the gate proves that it can fail.

Each defect is a small, realistic variation of the relay — the kind of mistake a hardening sprint
makes — built through the app factory's injection points (limiter, audit log, deliverer client,
dependency overrides) or an ASGI wrapper. None is reachable through a setting of the service: they
exist only in this test-only factory, used by ``python -m gate.harness --defect NAME``.

For every acceptance area there are defects that some scenario must catch; the tests in
tests/features/ (and ``relay-gate selftest``) run the scenarios against each one and require a failure.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.app import create_app
from service.audit import AuditLog
from service.auth import Principal
from service.config import WORKSPACE_RE, Settings
from service.delivery import WebhookDeliverer
from service.deps import get_admin, get_principal
from service.errors import Problem
from service.headers import profile_headers
from service.limiter import Decision, FallbackRateLimiter, build_limiter

Area = Literal["rate_limit", "signing", "headers", "audit"]


@dataclass
class Variant:
    """What a defect changes; empty means the reference service as shipped."""

    settings: dict[str, Any] = field(default_factory=dict)
    limiter: Callable[[Settings, Callable[[str], None]], Any] | None = None  # (settings, on_backend_change)
    audit: Callable[[Settings], AuditLog] | None = None
    delivery_hook: Callable[[Settings], Callable[[httpx.Request], Awaitable[None]]] | None = None
    overrides: Callable[[], dict[Any, Any]] | None = None
    patch: Callable[[FastAPI], None] | None = None  # edits the built app (e.g. its key ring)
    wrap: Callable[[ASGIApp, Settings], ASGIApp] | None = None


@dataclass(frozen=True)
class Defect:
    name: str
    area: Area
    summary: str
    variant: Callable[[], Variant]
    needs_control: bool = False  # only a scenario that controls Redis/PostgreSQL can see it


# -- ASGI wrappers: a response-start editor ------------------------------------------------------------


def _edit_response(edit: Callable[[int, list[tuple[bytes, bytes]]], list[tuple[bytes, bytes]]]) -> Any:
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


def _strip_security_when(pred: Callable[[int], bool]) -> Any:
    names = _security_names()
    return _edit_response(lambda status, h: [(k, v) for k, v in h if k not in names] if pred(status) else h)


def _replace_header(name: bytes, value: bytes, when: Callable[[int], bool] = lambda s: True) -> Any:
    def edit(status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        if not when(status):
            return headers
        return [(k, v) for k, v in headers if k != name] + [(name, value)]

    return _edit_response(edit)


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


def _off_by_one(settings: Settings, on_change: Callable[[str], None]) -> Any:
    # counts against limit + 1 but advertises the configured limit: the classic `<=` vs `<`
    wider = settings.model_copy(update={"rate_limit_exec_per_min": settings.rate_limit_exec_per_min + 1})
    inner = build_limiter(wider, on_backend_change=on_change)
    limit = settings.rate_limit_exec_per_min
    return _DecisionRewriter(
        inner,
        lambda d: dataclasses.replace(d, limit=limit, remaining=max(0, d.remaining - 1) if d.allowed else 0),
    )


def _fails_closed(settings: Settings, on_change: Callable[[str], None]) -> Any:
    inner = build_limiter(settings, on_backend_change=on_change)

    def rewrite(d: Decision) -> Decision:
        if d.backend != "redis":
            raise Problem(503, "rate limiter unavailable")
        return d

    return _DecisionRewriter(inner, rewrite)


# -- dependency overrides --------------------------------------------------------------------------


def _workspace_from_header() -> dict[Any, Any]:
    async def principal(request: Request) -> Principal:
        p = await get_principal(request)
        claimed = request.headers.get("x-workspace-id", "")
        # "trust the client's workspace header when it looks like a workspace"
        if WORKSPACE_RE.match(claimed):
            return dataclasses.replace(p, workspace=claimed)
        return p

    return {get_principal: principal}


def _admin_check_missing() -> dict[Any, Any]:
    async def admin(request: Request) -> Principal:
        return await get_principal(request)

    return {get_admin: admin}


def _any_key_is_dev(app: FastAPI) -> None:
    # the key ring answers "dev of workspace default" for any token it does not know; every auth path
    # (dependencies and the auth-before-body middleware) shares this one ring
    keyring = app.state.relay.keyring
    lookup = keyring.lookup

    def lenient(token: str) -> Principal | None:
        return lookup(token) or Principal(role="dev", workspace="default", key_id="unknown")

    keyring.lookup = lenient


# -- delivery hooks (an httpx request event hook edits what goes on the wire) -----------------------


def _key(settings: Settings) -> bytes:
    keys = settings.signing_keys
    if not keys:
        raise RuntimeError("this defect needs ACTIONS_SIGNING_SECRET")
    return keys[0]


def _reserialised_signature(settings: Settings) -> Callable[[httpx.Request], Awaitable[None]]:
    key = _key(settings)

    async def hook(request: httpx.Request) -> None:
        # signs json.dumps(json.loads(body)) — default separators, so not the bytes that are sent
        canonical = json.dumps(json.loads(request.content)).encode()
        request.headers["X-Signature"] = "sha256=" + hmac.new(key, canonical, hashlib.sha256).hexdigest()

    return hook


_FIXED_REQUEST_ID = str(uuid.UUID(int=0x5EED))


def _request_id_reused(settings: Settings) -> Callable[[httpx.Request], Awaitable[None]]:
    async def hook(request: httpx.Request) -> None:
        request.headers["X-Request-ID"] = _FIXED_REQUEST_ID

    return hook


def _timestamp_not_signed(settings: Settings) -> Callable[[httpx.Request], Awaitable[None]]:
    key = _key(settings)

    async def hook(request: httpx.Request) -> None:
        mac = hmac.new(key, request.content, hashlib.sha256).digest()
        request.headers["webhook-signature"] = "v1," + base64.b64encode(mac).decode()

    return hook


# -- audit wrappers --------------------------------------------------------------------------------


class _AuditSwallowsFailure(AuditLog):
    """begin() that carries on when the database is down: the webhook goes out unaudited."""

    async def begin(self, **kwargs: Any) -> int:
        try:
            return await super().begin(**kwargs)
        except Exception:
            return -1

    async def complete(self, row_id: int, **kwargs: Any) -> None:
        if row_id >= 0:
            await super().complete(row_id, **kwargs)


class _AuditOnlySuccesses(AuditLog):
    """Writes the audit row only once the delivery succeeded: failed deliveries leave no trace."""

    _pending: dict[int, dict[str, Any]]

    async def begin(self, **kwargs: Any) -> int:
        self.__dict__.setdefault("_pending", {})
        token = len(self._pending) + 1
        self._pending[token] = kwargs
        return token

    async def complete(self, row_id: int, **kwargs: Any) -> None:
        started = self._pending.pop(row_id)
        if kwargs.get("status") == "ok":
            real = await super().begin(**started)
            await super().complete(real, **kwargs)


def _audit(cls: type[AuditLog]) -> Callable[[Settings], AuditLog]:
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


_LEAKS = [(b"server", b"uvicorn"), (b"x-powered-by", b"FastAPI")]

# -- the catalogue ---------------------------------------------------------------------------------

_CATALOGUE = (
    # headers
    Defect("headers-missing-on-500", "headers",
           "security headers set inside ServerErrorMiddleware (BaseHTTPMiddleware style): "
           "an unhandled 500 goes out bare",
           lambda: Variant(wrap=_strip_security_when(lambda s: s >= 500))),
    Defect("headers-missing-on-429", "headers",
           "the 429 is produced outside the header middleware and carries no security headers",
           lambda: Variant(wrap=_strip_security_when(lambda s: s == 429))),
    Defect("hsts-without-includesubdomains", "headers",
           "HSTS without includeSubDomains",
           lambda: Variant(wrap=_replace_header(b"strict-transport-security", b"max-age=31536000"))),
    Defect("server-header-leak", "headers",
           "Server and X-Powered-By advertise the implementation",
           lambda: Variant(wrap=_edit_response(lambda s, h: [*h, *_LEAKS]))),
    # rate limiting
    Defect("limiter-keyed-by-client-header", "rate_limit",
           "the rate-limit workspace is taken from the client's X-Workspace-ID header",
           lambda: Variant(overrides=_workspace_from_header)),
    Defect("off-by-one-admission", "rate_limit",
           "admits limit + 1 executes per window",
           lambda: Variant(limiter=_off_by_one)),
    Defect("retry-after-zero", "rate_limit",
           "429 says Retry-After: 0",
           lambda: Variant(wrap=_replace_header(b"retry-after", b"0", lambda s: s == 429))),
    Defect("remaining-negative", "rate_limit",
           "X-RateLimit-Remaining goes negative once over the limit",
           lambda: Variant(wrap=_replace_header(b"x-ratelimit-remaining", b"-1", lambda s: s == 429))),
    Defect("fallback-fails-closed", "rate_limit",
           "with Redis down the limiter refuses everything with 503 instead of falling back",
           lambda: Variant(limiter=_fails_closed), needs_control=True),
    Defect("no-redis-timeout", "rate_limit",
           "Redis calls wait up to 10 s: a hung Redis stalls every execute",
           lambda: Variant(settings={"redis_connect_timeout_ms": 10_000, "redis_socket_timeout_ms": 10_000}),
           needs_control=True),
    # signing
    Defect("signature-over-reserialised-json", "signing",
           "X-Signature is computed over json.dumps(json.loads(body)), not the bytes sent",
           lambda: Variant(delivery_hook=_reserialised_signature)),
    Defect("request-id-reused", "signing",
           "every delivery carries the same X-Request-ID",
           lambda: Variant(delivery_hook=_request_id_reused)),
    Defect("webhook-timestamp-not-signed", "signing",
           "webhook-signature covers the body only, not id.timestamp.body (replays undetectable)",
           lambda: Variant(delivery_hook=_timestamp_not_signed)),
    Defect("unsigned-deliveries", "signing",
           "ACTIONS_SIGNING_SECRET not configured: deliveries go out unsigned",
           lambda: Variant(settings={"actions_signing_secret": None, "actions_signing_secrets_extra": []})),
    # auth and audit
    Defect("dev-key-reads-audit", "audit",
           "the admin check on /audit is missing: a dev key reads every workspace's audit log",
           lambda: Variant(overrides=_admin_check_missing)),
    Defect("unknown-key-accepted", "audit",
           "any bearer token is accepted as a dev key of workspace default",
           lambda: Variant(patch=_any_key_is_dev)),
    Defect("failed-deliveries-not-audited", "audit",
           "the audit row is written only after a successful delivery",
           lambda: Variant(audit=_audit(_AuditOnlySuccesses))),
    Defect("webhook-sent-when-audit-failed", "audit",
           "execute carries on when the audit write fails: a webhook without its audit row",
           lambda: Variant(audit=_audit(_AuditSwallowsFailure)), needs_control=True),
)  # fmt: skip

DEFECTS: dict[str, Defect] = {d.name: d for d in _CATALOGUE}


def build_app(settings: Settings, defect: str | None = None, *, fault_path: str | None = None) -> ASGIApp:
    """The relay app, with ``defect`` applied when given, and a route raising at ``fault_path``."""
    variant = DEFECTS[defect].variant() if defect else Variant()
    if variant.settings:
        settings = settings.model_copy(update=variant.settings)
    kwargs: dict[str, Any] = {}
    if variant.limiter is not None:
        kwargs["limiter_factory"] = variant.limiter
    if variant.audit is not None:
        kwargs["audit_log"] = variant.audit(settings)
    if variant.delivery_hook is not None:
        client = httpx.AsyncClient(
            trust_env=False, event_hooks={"request": [variant.delivery_hook(settings)]}
        )
        kwargs["deliverer"] = WebhookDeliverer(
            keys=settings.signing_keys,
            allowed_hosts=settings.allowed_hosts,
            timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s,
            client=client,
        )
    app: FastAPI = create_app(settings, **kwargs)
    if variant.overrides is not None:
        app.dependency_overrides.update(variant.overrides())
    if variant.patch is not None:
        variant.patch(app)
    if fault_path:

        async def fault() -> None:
            raise RuntimeError("deliberate fault: relay-gate provokes an unhandled exception here")

        app.add_api_route(fault_path, fault, methods=["GET"], include_in_schema=False)
    return variant.wrap(app, settings) if variant.wrap is not None else app
