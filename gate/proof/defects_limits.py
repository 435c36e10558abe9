"""Deliberate defects of the rate limiter and the security headers (docs/service.md, "Rate limiting" and
"Security headers"), each one a small mistake a developer could plausibly ship and each breaking one
sentence of those sections; built like the rest of gate/proof/catalogue.py's catalogue (test-only, through the
app factory's injection points or an ASGI wrapper), never reachable through a setting of the service.

Several are invisible on the reference stack's 3 s window — a Retry-After of "the window length", a
RateLimit t of the window, a reset sent as a delta all land within the tolerances a short window needs —
and are caught by the scenarios that start a replica with a window of about an hour; others bend the
in-process fallback, the Lua script or the defaults, which only replicas started with other settings
show. ``caught_by`` names every scenario that fails against each one (measured with ``relay-gate
selftest``); where a 3 s scenario fails only when a burst happens to fall in the last second of its
window, it is named too, and the proof test (tests/features/test_proof_rate_limit.py) requires only
the scenarios that always fail.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import os
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate.proof import parts
from gate.proof.catalogue import (
    H_DEV_ENCODINGS,
    H_DEV_REFUSALS,
    H_METHODS,
    H_RATE_LIMITED,
    H_SEED_PROFILE,
    H_SERVER_ERROR,
    H_SHAPES,
    H_URL_ONLY,
    RL_ADMIN,
    RL_DEFAULTS,
    RL_DISABLED,
    RL_EXACT,
    RL_FALLBACK_BOUND,
    RL_HUNG,
    RL_IETF,
    RL_ISOLATION,
    RL_KEYS,
    RL_KILLED,
    RL_LONG,
    RL_NO_TTL,
    RL_PARALLEL,
    RL_REPROBE,
    RL_ROLLOVER,
    RL_SMOKE,
    RL_SPOOF,
    Defect,
    Variant,
)
from service.auth import Principal
from service.config import Settings
from service.deps import get_principal
from service.headers import PROFILES
from service.limiter import Decision, FallbackRateLimiter, build_limiter

_SECURITY = {k.lower().encode() for profile in PROFILES.values() for k in profile}
_RATE_LIMIT = {
    b"x-ratelimit-limit", b"x-ratelimit-remaining", b"x-ratelimit-reset", b"ratelimit", b"ratelimit-policy",
}  # fmt: skip

# -- ASGI wrappers that see the request too ----------------------------------------------------------

RequestEdit = Callable[[Scope, int, parts.Headers], parts.Headers]


def edit_for_request(edit: RequestEdit) -> parts.Wrap:
    """Like :func:`gate.proof.parts.edit_response`, with the request's scope (method, headers) at hand."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send2(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = edit(scope, int(message["status"]), list(message.get("headers", ())))
                await send(message)

            await app(scope, receive, send2)

        return wrapped

    return wrap


def _strip_security(headers: parts.Headers) -> parts.Headers:
    return [(k, v) for k, v in headers if k.lower() not in _SECURITY]


def _header(headers: parts.Headers, name: bytes) -> bytes | None:
    return next((v for k, v in headers if k.lower() == name), None)


def security_headers_only_on_json() -> parts.Wrap:
    """Security headers kept only on JSON bodies ("headers are for the documents we serve"): the
    Prometheus text of /metrics goes out bare."""
    return parts.edit_response(
        lambda s, h: h if b"json" in (_header(h, b"content-type") or b"") else _strip_security(h)
    )


def security_headers_skipped_for_head() -> parts.Wrap:
    """The header layer skips HEAD ("no body, nothing to protect"): a HEAD answer goes out bare."""
    return edit_for_request(lambda scope, s, h: _strip_security(h) if scope["method"] == "HEAD" else h)


def bare_when(status: int) -> parts.Wrap:
    """Responses of ``status`` produced by a layer outside the header middleware."""
    return parts.edit_response(lambda s, h: _strip_security(h) if s == status else h)


def _answer(status: int, headers: parts.Headers, body: bytes = b"") -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return app


def cors_preflight_outside() -> parts.Wrap:
    """A CORS layer wrapped around the whole app (outside the security headers) answers every preflight
    itself, as Starlette's CORSMiddleware does: 200 with Access-Control-Allow-*, no security header."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            req = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
            if (
                scope["type"] == "http"
                and scope["method"] == "OPTIONS"
                and b"origin" in req
                and (b"access-control-request-method" in req)
            ):
                allow = [
                    (b"access-control-allow-origin", req[b"origin"]),
                    (b"access-control-allow-methods", b"GET, POST"),
                    (b"access-control-allow-headers", req.get(b"access-control-request-headers", b"*")),
                    (b"access-control-max-age", b"600"),
                    (b"vary", b"Origin"),
                ]
                await _answer(200, allow)(scope, receive, send)
                return
            await app(scope, receive, send)

        return wrapped

    return wrap


UNUSED_METHODS = frozenset({"PUT", "PATCH", "OPTIONS", "TRACE", "CONNECT"})


def method_guard_outside() -> parts.Wrap:
    """A guard in front of the app refuses the methods the API never uses with its own bare 405, before
    the app (and its header middleware) sees the request."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        body = b'{"detail":"Method Not Allowed"}'

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] in UNUSED_METHODS:
                headers = [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD, POST, DELETE")]
                await _answer(405, headers, body)(scope, receive, send)
                return
            await app(scope, receive, send)

        return wrapped

    return wrap


def seed_profile_xss_zero() -> parts.Wrap:
    """OWASP's X-XSS-Protection: 0 applied to the seed profile too, whose values must stay the seed's."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        if settings.security_headers_profile != "seed":
            return app
        return parts.replace_header(b"x-xss-protection", b"0")(app, settings)

    return wrap


STRICT_ONLY = (
    b"cross-origin-opener-policy",
    b"cross-origin-resource-policy",
    b"cross-origin-embedder-policy",
    b"permissions-policy",
    b"x-permitted-cross-domain-policies",
)


def strict_profile_truncated() -> parts.Wrap:
    """The strict profile written as the seed's plus a few lines, the last five lost in a merge: no
    Cross-Origin-*-Policy, Permissions-Policy or X-Permitted-Cross-Domain-Policies."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        if settings.security_headers_profile != "strict":
            return app
        return parts.edit_response(lambda s, h: [(k, v) for k, v in h if k not in STRICT_ONLY])(app, settings)

    return wrap


# -- rate-limit headers and bodies --------------------------------------------------------------------


def limiter_rewriting(rewrite: Callable[[Settings, Decision], Decision]) -> Callable[[Settings, Any], Any]:
    def factory(settings: Settings, on_change: Callable[[str], None]) -> Any:
        inner = build_limiter(settings, on_backend_change=on_change)
        return parts._DecisionRewriter(inner, lambda d: rewrite(settings, d))

    return factory


# set by the overridden principal dependency, read by the limiter in the same request's task
_ADMIN_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("relay_gate_admin", default=False)


class _AdminExempt:
    """Admits every admin request without counting it ("ops keys must never be throttled"), with the
    headers of a full quota: a workspace's admin key escapes the quota its developer keys share."""

    def __init__(self, inner: FallbackRateLimiter, settings: Settings) -> None:
        self.inner = inner
        self.settings = settings

    @property
    def backend(self) -> str:
        return self.inner.backend

    async def hit(self, workspace: str) -> Decision:
        if not _ADMIN_REQUEST.get():
            return await self.inner.hit(workspace)
        limit, window = self.settings.rate_limit_exec_per_min, self.settings.rate_limit_window_s
        return Decision(True, limit, limit, int(time.time()) + window, 0, self.inner.backend, window)

    async def aclose(self) -> None:
        await self.inner.aclose()


def admin_exempt_limiter(settings: Settings, on_change: Callable[[str], None]) -> Any:
    return _AdminExempt(build_limiter(settings, on_backend_change=on_change), settings)


def principal_noting_admins() -> dict[Any, Any]:
    async def principal(request: Request) -> Principal:
        found = await get_principal(request)
        _ADMIN_REQUEST.set(found.is_admin)
        return found

    return {get_principal: principal}


def retry_after_rounded_down(settings: Settings, d: Decision) -> Decision:
    # int() where ceil() belongs: up to a second short of the reset, so a client that waits as asked
    # comes back inside the window and is refused again
    if d.allowed:
        return d
    return dataclasses.replace(d, retry_after=max(1, int(d.reset_at - time.time())))


def retry_after_is_the_window(settings: Settings, d: Decision) -> Decision:
    # "retry after one window": right only for a refusal at the very start of its window
    return d if d.allowed else dataclasses.replace(d, retry_after=d.window_s)


_T = re.compile(rb";t=\d+")


def ratelimit_t_is_the_window() -> parts.Wrap:
    """RateLimit's t written as the policy's window (the draft's w), not the seconds left in it."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        t = f";t={settings.rate_limit_window_s}".encode()
        return parts.edit_response(
            lambda s, h: [(k, _T.sub(t, v) if k == b"ratelimit" else v) for k, v in h]
        )(app, settings)

    return wrap


def reset_as_delta() -> parts.Wrap:
    """X-RateLimit-Reset sent as the seconds until the reset (as the IETF drafts' RateLimit-Reset), not
    the seed's epoch: a seed client computes reset - now < 0 and retries at once."""

    def edit(status: int, headers: parts.Headers) -> parts.Headers:
        out = []
        for k, v in headers:
            if k == b"x-ratelimit-reset" and v.isdigit():
                v = str(max(0, math.ceil(int(v) - time.time()))).encode()
            out.append((k, v))
        return out

    return parts.edit_response(edit)


def rate_limit_headers_only_on_429() -> parts.Wrap:
    """The X-RateLimit and RateLimit fields sent with refusals only ("the client needs them when it is
    limited"): admitted executes carry none."""
    return parts.edit_response(lambda s, h: h if s == 429 else [(k, v) for k, v in h if k not in _RATE_LIMIT])


def refusal_cacheable() -> parts.Wrap:
    """A 429 marked cacheable until its Retry-After (so that a CDN absorbs the retries), replacing the
    no-store every response carries: a shared cache may then answer another client with it."""

    def edit(status: int, headers: parts.Headers) -> parts.Headers:
        if status != 429:
            return headers
        wait = _header(headers, b"retry-after") or b"60"
        kept = [(k, v) for k, v in headers if k != b"cache-control"]
        return [*kept, (b"cache-control", b"public, max-age=" + wait)]

    return parts.edit_response(edit)


def refusal_as_plain_text() -> parts.Wrap:
    """A 429 with the framework's plain-text body ("Too Many Requests", as slowapi's default handler
    sends it), not the problem document every other error is."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        body = b"Too Many Requests"

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            status = 0

            async def send2(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    if status == 429:
                        drop = {b"content-type", b"content-length"}
                        headers = [(k, v) for k, v in message.get("headers", ()) if k not in drop]
                        message["headers"] = [*headers, (b"content-type", b"text/plain; charset=utf-8"),
                                              (b"content-length", str(len(body)).encode())]  # fmt: skip
                elif message["type"] == "http.response.body" and status == 429:
                    if message.get("more_body"):
                        return  # the problem document's chunks: replaced by the one below
                    message = {"type": "http.response.body", "body": body}
                await send(message)

            await app(scope, receive, send2 if scope["type"] == "http" else send)

        return wrapped

    return wrap


# -- the limiter itself ---------------------------------------------------------------------------


_NO_REPAIR_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""


def script_without_ttl_repair(settings: Settings, on_change: Callable[[str], None]) -> Any:
    """The Lua script sets the expiry on a window's first hit only: the PTTL check that re-arms a key
    found without one (left by an older, non-atomic release, a PERSIST, a restore) is gone."""
    limiter = build_limiter(settings, on_backend_change=on_change)
    if limiter.redis is not None:
        limiter.redis._script = limiter.redis.client.register_script(_NO_REPAIR_SCRIPT)
    return limiter


class _Unlimited:
    """Failing open taken literally: while Redis is away, every request is let through."""

    def __init__(self, settings: Settings) -> None:
        self.limit, self.window_s = settings.rate_limit_exec_per_min, settings.rate_limit_window_s

    def hit(self, workspace: str) -> Decision:
        return Decision(
            True, self.limit, self.limit, math.ceil(time.time()) + self.window_s, 0, "memory", self.window_s
        )


def fallback_without_limit(settings: Settings, on_change: Callable[[str], None]) -> Any:
    limiter = build_limiter(settings, on_backend_change=on_change)
    limiter.memory = _Unlimited(settings)  # type: ignore[assignment]
    return limiter


def fallback_monotonic_reset(settings: Settings, on_change: Callable[[str], None]) -> FallbackRateLimiter:
    """``wall = now`` where ``wall = self._wall()`` belongs: the fallback stamps X-RateLimit-Reset from
    its monotonic clock (seconds since boot), not epoch seconds."""
    limiter = build_limiter(settings, on_backend_change=on_change)
    limiter.memory._wall = limiter.memory._clock
    return limiter


def reprobe_uncapped(settings: Settings, on_change: Callable[[str], None]) -> FallbackRateLimiter:
    """The re-probe backoff doubles for as long as Redis is away: REDIS_REPROBE_MAX_S is never applied."""
    limiter = build_limiter(settings, on_backend_change=on_change)
    limiter.reprobe_max_s = math.inf
    return limiter


UNSEED_DEFAULT_LIMIT = 100


def default_limit_not_the_seeds(settings: Settings, on_change: Callable[[str], None]) -> Any:
    """``rate_limit_exec_per_min: int = Field(100, ...)``: a relay left at its default admits 100
    executes per window, not the seed's 60 (the variable read as unset when absent or empty, as
    pydantic-settings does with env_ignore_empty)."""
    if not os.environ.get("RATE_LIMIT_EXEC_PER_MIN"):
        settings = settings.model_copy(update={"rate_limit_exec_per_min": UNSEED_DEFAULT_LIMIT})
    return build_limiter(settings, on_backend_change=on_change)


UNSEED_DEFAULT_WINDOW_S = 1


def default_window_not_a_minute(settings: Settings, on_change: Callable[[str], None]) -> Any:
    """``rate_limit_window_s: int = Field(1, ...)``: left unset, the window is a second (the seed's
    "per minute" limit applied per second: 60 times the documented rate)."""
    if not os.environ.get("RATE_LIMIT_WINDOW_S"):
        settings = settings.model_copy(update={"rate_limit_window_s": UNSEED_DEFAULT_WINDOW_S})
    return build_limiter(settings, on_backend_change=on_change)


def backend_gauge_not_wired(settings: Settings, on_change: Callable[[str], None]) -> Any:
    """The limiter built without the metrics hook: rate_limiter_backend keeps saying what it said at
    start-up, whichever limiter decides."""
    return build_limiter(settings)


def rate_limit_enabled_ignored(app: FastAPI) -> None:
    """RATE_LIMIT_ENABLED is read into the settings but never consulted: executes are limited anyway."""
    relay = app.state.relay
    relay.settings = relay.settings.model_copy(update={"rate_limit_enabled": True})


def no_limit_without_redis(app: FastAPI) -> None:
    """ "Rate limiting needs Redis": without REDIS_URL the relay switches it off, instead of limiting on
    its in-process bucket."""
    relay = app.state.relay
    if not relay.settings.redis_url:
        relay.settings = relay.settings.model_copy(update={"rate_limit_enabled": False})


# -- the catalogue ---------------------------------------------------------------------------------

DEFECTS: tuple[Defect, ...] = (
    Defect("admin-key-not-rate-limited", "rate_limit",
           "admin keys are exempt from the limiter (never throttled, never counted): a workspace's admin "
           "key executes past the quota its developer keys used up",
           lambda: Variant(limiter=admin_exempt_limiter, overrides=principal_noting_admins),
           caught_by=(RL_ADMIN,)),
    # headers
    Defect("security-headers-only-on-json", "headers",
           "security headers added only to JSON responses: the Prometheus text of /metrics goes out bare",
           lambda: Variant(wrap=security_headers_only_on_json()),
           caught_by=(H_METHODS,)),
    Defect("security-headers-skipped-for-head", "headers",
           "the header layer skips HEAD requests (no body, nothing to protect): HEAD answers go out bare",
           lambda: Variant(wrap=security_headers_skipped_for_head()),
           caught_by=(H_METHODS, H_DEV_ENCODINGS)),
    Defect("cors-preflight-without-security-headers", "headers",
           "a CORS layer around the app answers preflights itself, without the security headers",
           lambda: Variant(wrap=cors_preflight_outside()),
           caught_by=(H_SHAPES,)),
    Defect("method-guard-405-without-security-headers", "headers",
           "a guard in front of the app refuses PUT, PATCH and OPTIONS with its own bare 405",
           lambda: Variant(wrap=method_guard_outside()),
           caught_by=(H_METHODS, H_SHAPES, H_DEV_ENCODINGS)),
    Defect("headers-missing-on-400", "headers",
           "the 400 for a body that is not UTF-8 JSON is answered outside the header middleware, bare",
           lambda: Variant(wrap=bare_when(400)),
           caught_by=(H_DEV_ENCODINGS,)),
    Defect("seed-profile-xss-protection-zero", "headers",
           "the seed profile sends X-XSS-Protection: 0 (OWASP's advice applied to the profile that keeps "
           "the seed's values)",
           lambda: Variant(wrap=seed_profile_xss_zero()),
           caught_by=(H_SEED_PROFILE,)),
    Defect("strict-profile-without-cross-origin-headers", "headers",
           "the strict profile lost its last five lines: no Cross-Origin-*-Policy, Permissions-Policy or "
           "X-Permitted-Cross-Domain-Policies",
           lambda: Variant(wrap=strict_profile_truncated()),
           caught_by=(H_URL_ONLY, H_DEV_REFUSALS, H_SERVER_ERROR, H_RATE_LIMITED, H_METHODS, H_SHAPES,
                      H_DEV_ENCODINGS)),
    Defect("referrer-policy-browser-default", "headers",
           "Referrer-Policy is strict-origin-when-cross-origin (the browsers' default written in), not "
           "no-referrer",
           lambda: Variant(wrap=parts.replace_header(b"referrer-policy", b"strict-origin-when-cross-origin")),
           caught_by=(H_URL_ONLY, H_DEV_REFUSALS, H_SERVER_ERROR, H_RATE_LIMITED, H_METHODS, H_SHAPES,
                      H_DEV_ENCODINGS, H_SEED_PROFILE)),
    # rate limiting
    Defect("retry-after-rounded-down", "rate_limit",
           "a 429's Retry-After is the seconds to the reset rounded down (int, not ceil): up to a second "
           "short, so a client that waits as asked is refused again",
           lambda: Variant(limiter=limiter_rewriting(retry_after_rounded_down)),
           caught_by=(RL_LONG,)),
    Defect("retry-after-one-window", "rate_limit",
           "a 429's Retry-After (and RateLimit t) is the window length, not the seconds left in the window",
           lambda: Variant(limiter=limiter_rewriting(retry_after_is_the_window)),
           caught_by=(RL_LONG, RL_EXACT, RL_IETF)),
    Defect("ratelimit-t-is-the-window", "rate_limit",
           "RateLimit's t is the policy's window (the draft's w), not the seconds left in it",
           lambda: Variant(wrap=ratelimit_t_is_the_window()),
           caught_by=(RL_LONG, RL_IETF)),
    Defect("ratelimit-reset-as-delta", "rate_limit",
           "X-RateLimit-Reset is the seconds until the reset, not the seed's epoch seconds",
           lambda: Variant(wrap=reset_as_delta()),
           caught_by=(RL_LONG,)),
    Defect("ratelimit-headers-only-on-429", "rate_limit",
           "the X-RateLimit and RateLimit fields are sent with refusals only, not with admitted executes",
           lambda: Variant(wrap=rate_limit_headers_only_on_429()),
           caught_by=(RL_LONG, RL_SMOKE, RL_EXACT, RL_IETF, RL_ROLLOVER, RL_ISOLATION, RL_SPOOF, RL_KEYS,
                      RL_PARALLEL, RL_NO_TTL, RL_DEFAULTS, RL_REPROBE)),
    Defect("rate-limited-response-cacheable", "rate_limit",
           "a 429 is marked cacheable until its Retry-After (Cache-Control: public, max-age=N) instead of "
           "no-store",
           lambda: Variant(wrap=refusal_cacheable()),
           caught_by=(RL_LONG, RL_EXACT)),
    Defect("rate-limited-response-plain-text", "rate_limit",
           "a 429's body is the framework's plain 'Too Many Requests', not a problem document",
           lambda: Variant(wrap=refusal_as_plain_text()),
           caught_by=(RL_LONG, RL_EXACT)),
    Defect("lua-script-without-ttl-repair", "rate_limit",
           "the Lua script sets the expiry on a window's first hit only: a counter found without a TTL "
           "keeps none",
           lambda: Variant(limiter=script_without_ttl_repair),
           caught_by=(RL_NO_TTL,)),
    Defect("fallback-without-limit", "rate_limit",
           "while Redis is away the fallback lets every execute through: no per-replica bound at all",
           lambda: Variant(limiter=fallback_without_limit),
           caught_by=(RL_FALLBACK_BOUND, RL_DEFAULTS)),
    Defect("fallback-reset-on-the-monotonic-clock", "rate_limit",
           "the in-process fallback stamps X-RateLimit-Reset from its monotonic clock (seconds since "
           "boot), not epoch seconds",
           lambda: Variant(limiter=fallback_monotonic_reset), needs_control=True,
           caught_by=(RL_KILLED,)),
    Defect("reprobe-backoff-uncapped", "rate_limit",
           "the re-probe backoff doubles without end: REDIS_REPROBE_MAX_S is never applied",
           lambda: Variant(limiter=reprobe_uncapped),
           caught_by=(RL_REPROBE,)),
    Defect("default-limit-not-the-seeds", "rate_limit",
           "left unset, RATE_LIMIT_EXEC_PER_MIN defaults to 100, not the seed's 60",
           lambda: Variant(limiter=default_limit_not_the_seeds),
           caught_by=(RL_DEFAULTS,)),
    Defect("default-window-not-a-minute", "rate_limit",
           "left unset, RATE_LIMIT_WINDOW_S defaults to 1 s: the seed's per-minute limit applied per second",
           lambda: Variant(limiter=default_window_not_a_minute),
           caught_by=(RL_DEFAULTS,)),
    Defect("backend-gauge-not-wired", "rate_limit",
           "the limiter is built without the metrics hook: rate_limiter_backend never shows the fallback",
           lambda: Variant(limiter=backend_gauge_not_wired),
           caught_by=(RL_KILLED, RL_HUNG, RL_FALLBACK_BOUND, RL_REPROBE)),
    Defect("rate-limit-enabled-ignored", "rate_limit",
           "RATE_LIMIT_ENABLED=false is read but never consulted: executes are limited anyway",
           lambda: Variant(patch=rate_limit_enabled_ignored),
           caught_by=(RL_DISABLED,)),
    Defect("no-rate-limit-without-redis-url", "rate_limit",
           "without REDIS_URL rate limiting is switched off instead of running on the in-process limiter",
           lambda: Variant(patch=no_limit_without_redis),
           caught_by=(RL_DEFAULTS,)),
)  # fmt: skip
