"""The building blocks of gate/proof/defects_api.py: each bends one part of the reference service the way a
change to the API contract plausibly goes wrong, on one app only (its routes, exception handlers,
middleware list, key ring, preview signer, limiter or metrics), or in an ASGI wrapper around it.

Like gate/proof/parts.py, nothing here is reachable from a service setting: only
:func:`gate.proof.catalogue.build_app` composes these into a running relay (``python -m gate.stack.relay
--defect``). Nothing patches a module: two apps built in one process keep their own behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import dataclasses
import hashlib
import hmac
import itertools
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIRouter
from prometheus_client import Histogram
from psycopg import sql
from psycopg.rows import class_row
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gate.proof.parts import Wrap
from service import audit as audit_module
from service.actions import CATALOG, ResolvedAction
from service.audit import AuditLog, AuditRecord, AuditUnavailable
from service.auth import KeyRing, Principal, fingerprint
from service.bodylimit import BodyLimitMiddleware
from service.config import WORKSPACE_RE, Settings
from service.deps import Relay, get_principal
from service.errors import Problem, problem_response
from service.limiter import Decision
from service.logs import current_request_id, reset_request_id, set_request_id
from service.metrics import KNOWN_METHODS, UNMATCHED_ROUTE, Metrics, RequestContextMiddleware, route_label
from service.preview import PreviewSigner, PreviewTokenError, _unb64
from service.routes.health import ready as reference_ready
from service.signing import new_webhook_id

Patch = Callable[[FastAPI], None]


def _relay(app: FastAPI) -> Relay:
    relay: Relay = app.state.relay
    return relay


# -- routes: one answered differently, one removed, one hidden ----------------------------------------


def override_route(app: FastAPI, path: str, methods: Iterable[str], endpoint: Callable[..., Any]) -> None:
    """Answer ``methods`` on ``path`` with ``endpoint(request)``, ahead of the app's own route (Starlette
    matches in order). An APIRoute, so ``scope["route"]`` (the metrics' route label) is still set."""
    app.router.routes.insert(0, APIRoute(path, endpoint, methods=list(methods), include_in_schema=False))
    _changed(app)


def edit_routes(app: FastAPI, edit: Callable[[APIRoute], APIRoute | None]) -> None:
    """Every APIRoute of this app as ``edit`` returns it (None: gone), on copies: the routers the service's
    modules declare, which FastAPI includes by reference, stay as they are for any other app."""
    from fastapi.routing import _IncludedRouter  # FastAPI >= 0.16x includes routers lazily

    def edited(routes: list[Any]) -> list[Any]:
        out = []
        for r in routes:
            if isinstance(r, APIRoute):
                r = edit(copy.copy(r))
            elif isinstance(r, _IncludedRouter):
                router = APIRouter()
                router.routes = edited(r.original_router.routes)
                context = dataclasses.replace(r.include_context, included_router=router)
                r = _IncludedRouter(original_router=router, include_context=context)
            if r is not None:
                out.append(r)
        return out

    app.router.routes[:] = edited(app.router.routes)
    _changed(app)


def _changed(app: FastAPI) -> None:
    mark = getattr(app.router, "_mark_routes_changed", None)
    if callable(mark):
        mark()


def remove_route(app: FastAPI, path: str, method: str) -> None:
    edit_routes(app, lambda r: None if r.path == path and method in (r.methods or ()) else r)


def hide_from_schema(path: str) -> Patch:
    def hide(route: APIRoute) -> APIRoute:
        if route.path == path:
            route.include_in_schema = False
        return route

    return lambda app: edit_routes(app, hide)


def head_of_health_removed(app: FastAPI) -> None:
    remove_route(app, "/_stcore/health", "HEAD")


def liveness_pings_the_database(app: FastAPI) -> None:
    async def health(request: Request) -> Response:
        audit = _relay(request.app).audit
        try:
            if audit is None:
                raise AuditUnavailable("not configured")
            await audit.ping()
        except AuditUnavailable:
            return problem_response(503, "not live: the audit database is unavailable")
        return JSONResponse({"ok": True})

    override_route(app, "/_stcore/health", ["GET"], health)


def readiness_pings_redis(app: FastAPI) -> None:
    async def ready(request: Request) -> Any:
        relay = _relay(request.app)
        answer = await reference_ready(relay)
        url = relay.settings.redis_url
        if url is None or answer.status_code != 200:
            return answer
        client = aioredis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        try:
            await client.ping()
        except (aioredis.RedisError, OSError):
            return problem_response(503, "not ready: redis unavailable", headers={"Retry-After": "5"})
        finally:
            await client.aclose()
        return answer

    override_route(app, "/_stcore/ready", ["GET"], ready)


def readiness_without_the_database(app: FastAPI) -> None:
    async def ready(request: Request) -> Response:
        return JSONResponse({"ok": True})

    override_route(app, "/_stcore/ready", ["GET"], ready)


def catalogue_of_parameter_names(app: FastAPI) -> None:
    async def actions(request: Request) -> Response:
        await get_principal(request)
        listed = [
            {"id": s.id, "description": s.description, "parameters": list(s.params.model_fields)}
            for s in CATALOG.values()
        ]
        return JSONResponse({"actions": listed})

    override_route(app, "/actions", ["GET"], actions)


def swagger_ui_on(app: FastAPI) -> None:
    async def docs(request: Request) -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="relay - Swagger UI")

    override_route(app, "/docs", ["GET"], docs)


# -- exception handlers --------------------------------------------------------------------------------


def fastapi_default_http_errors(app: FastAPI) -> None:
    app.exception_handlers[StarletteHTTPException] = http_exception_handler


def fastapi_default_validation_errors(app: FastAPI) -> None:
    app.exception_handlers[RequestValidationError] = request_validation_exception_handler


def allow_of_first_route_only(app: FastAPI) -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))

    app.exception_handlers[StarletteHTTPException] = handler


# -- the body limit ------------------------------------------------------------------------------------


class _ContentLengthOnly(BodyLimitMiddleware):
    """Checks the declared Content-Length and nothing else: a chunked body is never counted."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class _LimitExclusive(BodyLimitMiddleware):
    """``>=`` where ``>`` belongs: a body of exactly the limit is refused too."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app, max_bytes - 1)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = problem_response(413, f"request body exceeds the limit of {self.max_bytes + 1} bytes")
        await resp(scope, receive, send)


class _LimitPerMessage(BodyLimitMiddleware):
    """``size = len(body)`` where ``size += len(body)`` belongs: each piece the server reads is held
    to the limit, not their sum -- a body sent at once arrives in one piece and is refused, one trickled
    in chunks is read whole, whatever its size."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        pieces: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body = message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            pieces.append(body)
            if not message.get("more_body", False):
                break
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"".join(pieces), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def body_limit(cls: type[BodyLimitMiddleware]) -> Patch:
    def patch(app: FastAPI) -> None:
        for i, m in enumerate(app.user_middleware):
            if m.cls is BodyLimitMiddleware:
                app.user_middleware[i] = Middleware(cls, *m.args, **m.kwargs)  # type: ignore[arg-type]

    return patch


content_length_only = body_limit(_ContentLengthOnly)
limit_exclusive = body_limit(_LimitExclusive)
limit_per_message = body_limit(_LimitPerMessage)


# -- request ids ---------------------------------------------------------------------------------------


class _ClientTraceIds(RequestContextMiddleware):
    """The request context as it was before the hardening: a client's X-Request-ID, when it is a UUID, is
    "propagated" as the request's own id (into logs, problem bodies, the audit log and deliveries)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                with contextlib.suppress(ValueError):
                    rid = str(uuid.UUID(value.decode("latin-1")))
        token = set_request_id(rid)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                raw = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message["headers"] = [*raw, (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope.get("method", "GET")
            self.metrics.observe_request(
                method if method in KNOWN_METHODS else "OTHER", route_label(scope), status,
                time.perf_counter() - start,
            )  # fmt: skip
            reset_request_id(token)


def request_ids_from_clients(app: FastAPI) -> None:
    from service.headers import SecurityHeadersMiddleware

    base = FastAPI.build_middleware_stack

    def build() -> ASGIApp:
        inner = base(app)
        return SecurityHeadersMiddleware(_ClientTraceIds(inner, app._metrics), app._security_headers)  # type: ignore[attr-defined]

    app.build_middleware_stack = build  # type: ignore[method-assign]


# -- JSON bodies edited on the way in or out (an outer layer: a proxy, a "normalising" middleware) ---------


def edit_request_json(paths: frozenset[str], edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Wrap:
    """POST bodies to ``paths`` that are JSON objects go to the app as ``edit`` rewrote them."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in paths:
                await app(scope, receive, send)
                return
            body = await _read_body(receive)
            try:
                doc = json.loads(body)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and (edited := edit(doc)) != doc:
                body = json.dumps(edited).encode("utf-8")  # rewrites only what it normalised
            headers = [
                (k, v) for k, v in scope["headers"] if k not in (b"content-length", b"transfer-encoding")
            ]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
            await app(scope, _replay(body, receive), send)

        return wrapped

    return wrap


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


Match = Callable[[Scope, int, list[tuple[bytes, bytes]]], bool]


def edit_json_responses(match: Match, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Wrap:
    """The JSON body of every response ``match(scope, status, headers)`` picks goes out as ``edit``
    rewrote it (Content-Length recomputed)."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start: Message | None = None
            chunks: list[bytes] = []

            async def send2(message: Message) -> None:
                nonlocal start
                if message["type"] == "http.response.start" and match(
                    scope, int(message["status"]), list(message.get("headers", ()))
                ):
                    start = message
                    return
                if start is None or message["type"] != "http.response.body":
                    await send(message)
                    return
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = json.dumps(edit(json.loads(b"".join(chunks))), ensure_ascii=False).encode("utf-8")
                headers = [(k, v) for k, v in start.get("headers", ()) if k != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})

            await app(scope, receive, send2)

        return wrapped

    return wrap


def edit_response_json(
    method: str, path: str, status: int, edit: Callable[[dict[str, Any]], dict[str, Any]]
) -> Wrap:
    """The JSON body of ``method path`` answered ``status`` goes out as ``edit`` rewrote it."""
    return edit_json_responses(
        lambda scope, s, h: scope["method"] == method and scope["path"] == path and s == status, edit
    )


def _is_problem(scope: Scope, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"content-type" and v.startswith(b"application/problem+json") for k, v in headers)


problems_without_request_id = edit_json_responses(
    _is_problem, lambda doc: {k: v for k, v in doc.items() if k != "request_id"}
)


def body_decoded_for_a_debug_log(app: ASGIApp, settings: Settings) -> ASGIApp:
    """A debug middleware that logs request bodies as text: ``body.decode()`` raises on bytes that are not
    UTF-8, and the exception leaves the app (uvicorn answers 500)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        body = await _read_body(receive)
        text = body.decode("utf-8")  # the bug: no errors="replace"
        scope = {**scope, "relay_gate_debug_body": text[:200]}
        await app(scope, _replay(body, receive), send)

    return wrapped


BODY_PATHS = frozenset({"/actions/preview", "/actions/execute"})
_ACTION_FIELDS = frozenset({"action", "params", "destination", "preview_id"})


def unknown_fields_dropped(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop what the request models do not name, "for forward compatibility", instead of refusing it."""
    out = {k: v for k, v in doc.items() if k in _ACTION_FIELDS}
    spec = CATALOG.get(str(out.get("action")))
    if spec is not None and isinstance(out.get("params"), dict):
        out["params"] = {k: v for k, v in out["params"].items() if k in spec.params.model_fields}
    return out


def _destination(edit: Callable[[str], str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        if isinstance(doc.get("destination"), str):
            return {**doc, "destination": edit(doc["destination"])}
        return doc

    return apply


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


userinfo_stripped = _destination(_without_userinfo)
controls_and_spaces_stripped = _destination(lambda url: re.sub(r"[\x00-\x20\x7f]", "", url))


def bare_host_allowlist(app: FastAPI) -> None:
    """WEBHOOK_ALLOWED_HOSTS names WEBHOOK_URL's host without its port: every port on it is allowed."""
    relay = _relay(app)
    host = urlsplit(str(relay.settings.webhook_url)).hostname or ""
    relay.settings = relay.settings.model_copy(update={"webhook_allowed_hosts": [host.lower()]})
    relay.deliverer._allowed_hosts = relay.settings.allowed_hosts


# -- previews ------------------------------------------------------------------------------------------


class _LaxPreviewSigner(PreviewSigner):
    """The reference signer with one of its checks left out (or one added: single use)."""

    def __init__(
        self, key: bytes, *, ttl_s: int, mac: bool = True, workspace: bool = True, expiry: bool = True,
        single_use: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(key, ttl_s=ttl_s)
        self.checks = {"mac": mac, "workspace": workspace, "expiry": expiry}
        self.single_use = single_use
        self.used: set[str] = set()

    def redeem(self, token: str, *, workspace: str) -> ResolvedAction:
        p64, dot, m64 = token.partition(".")
        if not dot or not p64 or not m64:
            raise PreviewTokenError("preview_id is malformed")
        try:
            mac = _unb64(m64)
            payload = json.loads(_unb64(p64))
        except ValueError:
            raise PreviewTokenError("preview_id is malformed") from None
        if self.checks["mac"] and not hmac.compare_digest(mac, self._mac(p64)):
            raise PreviewTokenError("preview_id is not valid (not issued by this service, or altered)")
        if not isinstance(payload, dict) or payload.get("v") != 1:
            raise PreviewTokenError("preview_id has an unknown version")
        if self.checks["workspace"] and payload.get("w") != workspace:
            raise PreviewTokenError("preview_id was issued to another workspace")
        if self.checks["expiry"] and int(payload.get("exp", 0)) < time.time():
            raise PreviewTokenError("preview_id has expired")
        if self.single_use:
            if token in self.used:
                raise PreviewTokenError("preview_id has been executed already")
            self.used.add(token)
        return ResolvedAction(str(payload["a"]), dict(payload["p"]), workspace, str(payload["d"]))


def preview_signer(**lax: bool) -> Patch:
    def patch(app: FastAPI) -> None:
        relay = _relay(app)
        key = relay.previews._key
        relay.previews = _LaxPreviewSigner(key, ttl_s=relay.previews.ttl_s, **lax)

    return patch


def preview_key_per_process(app: FastAPI) -> None:
    """PREVIEW_SECRET unset where neither a signing secret nor an admin key derives one: each replica
    draws its own key, so a preview_id works only on the replica that issued it."""
    relay = _relay(app)
    relay.previews = PreviewSigner(os.urandom(32), ttl_s=relay.previews.ttl_s)


def preview_side_effect(effect: Callable[[Relay, ResolvedAction], Any]) -> Patch:
    """Each preview also starts ``effect(relay, action)`` in the background (a "reachability check",
    "traceability"): preview is no longer free of side effects."""

    def patch(app: FastAPI) -> None:
        relay = _relay(app)
        mint = relay.previews.mint
        running: set[asyncio.Task[Any]] = set()

        def mint_and_act(action: ResolvedAction) -> str:
            task = asyncio.get_running_loop().create_task(effect(relay, action))
            running.add(task)
            task.add_done_callback(running.discard)
            return mint(action)

        relay.previews.mint = mint_and_act  # type: ignore[method-assign]

    return patch


async def test_delivery(relay: Relay, action: ResolvedAction) -> None:
    await relay.deliverer.deliver(
        action.destination, action.body(), request_id=str(uuid.uuid4()), webhook_id=new_webhook_id()
    )


async def spend_quota(relay: Relay, action: ResolvedAction) -> None:
    if relay.settings.rate_limit_enabled:  # "previews cost as much as executes: limit them too"
        await relay.limiter.hit(action.workspace)


async def pending_audit_row(relay: Relay, action: ResolvedAction) -> None:
    if relay.audit is not None:
        await relay.audit.begin(
            request_id=uuid.uuid4(), webhook_id=new_webhook_id(), workspace=action.workspace,
            action=action.action, role="dev",
        )  # fmt: skip


def _ascii_escaped(doc: dict[str, Any]) -> dict[str, Any]:
    shown = json.dumps(json.loads(doc["body"]), sort_keys=True, separators=(",", ":")).encode("ascii")
    return {**doc, "body": shown.decode("ascii"), "body_sha256": hashlib.sha256(shown).hexdigest()}


def _host_without_port(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "destination_host": urlsplit("//" + str(doc["destination_host"])).hostname}


preview_ascii_escaped = edit_response_json("POST", "/actions/preview", 200, _ascii_escaped)
preview_host_without_port = edit_response_json("POST", "/actions/preview", 200, _host_without_port)
execute_reports_a_new_webhook_id = edit_response_json(
    "POST", "/actions/execute", 200, lambda doc: {**doc, "webhook_id": new_webhook_id()}
)


def workspace_from_query() -> dict[Any, Any]:
    async def principal(request: Request) -> Principal:
        p = await get_principal(request)
        # "let a caller act for a workspace": the same parameter name /audit filters by
        claimed = request.query_params.get("workspace", "")
        return dataclasses.replace(p, workspace=claimed) if WORKSPACE_RE.match(claimed) else p

    return {get_principal: principal}


# -- the limiter and its metric ----------------------------------------------------------------------


class _AuditsRefusals:
    """Every execute attempt on record, "for completeness": a refused one gets an error row before the
    429 goes out."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.inner = relay.limiter

    @property
    def backend(self) -> str:
        return self.inner.backend

    async def hit(self, workspace: str) -> Decision:
        decision = await self.inner.hit(workspace)
        audit = self.relay.audit
        if not decision.allowed and audit is not None:
            rid = uuid.UUID(current_request_id() or str(uuid.uuid4()))
            row = await audit.begin(request_id=rid, webhook_id=new_webhook_id(), workspace=workspace,
                                    action="notify.send", role="dev")  # fmt: skip
            await audit.complete(row, status="error", delivery_status="failed", http_status=None,
                                 attempts=0, latency_ms=0.0)  # fmt: skip
        return decision

    async def aclose(self) -> None:
        await self.inner.aclose()


def refusals_audited(app: FastAPI) -> None:
    relay = _relay(app)
    relay.limiter = _AuditsRefusals(relay)


class _Uncounted:
    def labels(self, **labels: str) -> _Uncounted:
        return self

    def inc(self, amount: float = 1) -> None:
        pass


def breaches_uncounted(app: FastAPI) -> None:
    _relay(app).metrics.breaches = _Uncounted()  # type: ignore[assignment]


# -- metrics labels and buckets ----------------------------------------------------------------------

_RAW: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("relay_gate_raw", default=None)


def raw_labels(*, route: bool, method: bool) -> tuple[Wrap, Patch]:
    """Metrics labelled with the request's own path (unmatched ones) and method (unknown ones), as an
    exporter configured to "keep the detail" does: every client can mint label values."""

    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            token = (
                _RAW.set((scope.get("path", ""), scope.get("method", "")))
                if scope["type"] == "http"
                else None
            )
            try:
                await app(scope, receive, send)
            finally:
                if token is not None:
                    _RAW.reset(token)

        return wrapped

    def patch(app: FastAPI) -> None:
        metrics: Metrics = _relay(app).metrics
        observe = metrics.observe_request

        def observe_raw(m: str, r: str, status: int, elapsed_s: float) -> None:
            raw = _RAW.get()
            if raw is not None:
                r = raw[0] if route and r == UNMATCHED_ROUTE else r
                m = raw[1] if method and m == "OTHER" else m
            observe(m, r, status, elapsed_s)

        metrics.observe_request = observe_raw  # type: ignore[method-assign,assignment]

    return wrap, patch


def default_buckets(app: FastAPI) -> None:
    """Both latency histograms with prometheus_client's default buckets (no 1.2 s bucket)."""
    m: Metrics = _relay(app).metrics
    for name in ("duration", "webhook_duration"):
        old = getattr(m, name)
        m.registry.unregister(old)
        setattr(m, name, Histogram(old._name, old._documentation, old._labelnames, registry=m.registry))
    m._request_children.clear()


# -- authentication ---------------------------------------------------------------------------------


def keys_by_prefix(*, chars: int = 16) -> Patch:
    """Keys looked up by their first ``chars`` characters (an index on the key's public prefix), the
    rest never compared."""

    def patch(app: FastAPI) -> None:
        relay = _relay(app)
        keyring: KeyRing = relay.keyring
        exact = keyring.lookup
        by_prefix = {
            k.key.get_secret_value()[:chars]: Principal(
                k.role, k.workspace, fingerprint(k.key.get_secret_value())
            )
            for k in relay.settings.all_keys
        }

        def lookup(token: str) -> Principal | None:
            found = exact(token)
            if found is None and len(token) >= chars:
                for prefix, principal in by_prefix.items():
                    if hmac.compare_digest(token[:chars].encode(), prefix.encode()):
                        found = principal
            return found

        keyring.lookup = lookup  # type: ignore[method-assign]

    return patch


def bearer_case_sensitive(app: FastAPI) -> None:
    keyring: KeyRing = _relay(app).keyring
    authenticate = keyring.authenticate

    def strict(authorization: str | None) -> Principal:
        if authorization and not authorization.startswith("Bearer "):
            challenge = 'Bearer realm="relay", error="invalid_request"'
            raise Problem(401, "malformed Authorization header: expected 'Bearer <API key>'",
                          headers={"WWW-Authenticate": challenge})  # fmt: skip
        return authenticate(authorization)

    keyring.authenticate = strict  # type: ignore[method-assign]


# -- the audit log: listing and writing --------------------------------------------------------------


class AuditListedDifferently(AuditLog):
    """The reference query with its order or its cursor comparison changed."""

    order = "DESC"
    after = "<"  # rows past the cursor, in the listing's order

    async def query(
        self, *, status: str | None = None, workspace: str | None = None, action: str | None = None,
        since: Any = None, until: Any = None, limit: int = 100, cursor: str | None = None,
    ) -> tuple[list[AuditRecord], str | None]:  # fmt: skip
        if not 1 <= limit <= audit_module.MAX_LIMIT:
            raise ValueError("limit out of range")
        where: list[sql.Composable] = []
        params: list[Any] = []
        for column, value in (("status", status), ("workspace", workspace), ("action", action)):
            if value is not None:
                where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if since is not None:
            where.append(sql.SQL("created_at >= %s"))
            params.append(since)
        if until is not None:
            where.append(sql.SQL("created_at < %s"))
            params.append(until)
        if cursor is not None:
            where.append(sql.SQL("(created_at, id) " + self.after + " (%s, %s)"))
            params.extend(audit_module._decode_cursor(cursor))
        order = sql.SQL(f"ORDER BY created_at {self.order}, id {self.order} LIMIT %s")
        query = sql.SQL("SELECT {} FROM audit_log{} {}").format(
            sql.SQL(audit_module._COLUMNS),
            sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
            order,
        )
        params.append(limit + 1)

        async def op(conn: psycopg.AsyncConnection[Any]) -> list[AuditRecord]:
            async with conn.cursor(row_factory=class_row(AuditRecord)) as cur:
                await cur.execute(query, params)
                return await cur.fetchall()

        rows = await self._run("audit query", op)
        if len(rows) <= limit:
            return rows, None
        page = rows[:limit]
        return page, audit_module._encode_cursor(page[-1].created_at, page[-1].id)


class AuditOldestFirst(AuditListedDifferently):
    order = "ASC"
    after = ">"


class AuditCursorInclusive(AuditListedDifferently):
    after = "<="


class AuditRowAtTheEnd(AuditLog):
    """One INSERT of the finished row after the delivery ("saves a round trip"): while the webhook is in
    flight nothing is on record, and a database that fails then leaves a delivery without its row."""

    _started: dict[int, dict[str, Any]]
    _tokens: itertools.count[int]

    async def begin(self, **kwargs: Any) -> int:
        token = next(self.__dict__.setdefault("_tokens", itertools.count(1)))
        self.__dict__.setdefault("_started", {})[token] = kwargs
        return token

    async def complete(self, row_id: int, **kwargs: Any) -> None:
        real = await super().begin(**self._started.pop(row_id))
        await super().complete(real, **kwargs)


# -- /audit's query string, rewritten or refused before the route sees it ------------------------------


def edit_audit_query(edit: Callable[[list[tuple[str, str]]], list[tuple[str, str]] | Response]) -> Wrap:
    def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == "/audit":
                query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                edited = edit(query)
                if isinstance(edited, Response):
                    await edited(scope, receive, send)
                    return
                scope = {**scope, "query_string": urlencode(edited).encode("latin-1")}
            await app(scope, receive, send)

        return wrapped

    return wrap


_OFFSET = re.compile(r"([Zz]|[+-]\d{2}:\d{2})$")
_TIMES = ("since", "until")


def _offset_dropped(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # value.replace(tzinfo=UTC) applied to every date-time, aware ones included: the wall-clock reading
    # of "12:00+02:00" is taken for 12:00 UTC
    return [(k, _OFFSET.sub("", v) if k in _TIMES else v) for k, v in query]


def _naive_refused(query: list[tuple[str, str]]) -> list[tuple[str, str]] | Response:
    # AwareDatetime in the query model: an offset is required, the documented UTC default forgotten
    for k, v in query:
        if k in _TIMES and not _OFFSET.search(v):
            return problem_response(422, f"query.{k}: Input should have timezone info")
    return query


def _limit_clamped(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, str(min(int(v), 500)) if k == "limit" and v.isdigit() else v) for k, v in query]


def _action_ignored(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # the route reads a parameter of another name; "action" is accepted and has no effect
    return [(k, v) for k, v in query if k != "action"]


audit_offset_dropped = edit_audit_query(_offset_dropped)
audit_naive_refused = edit_audit_query(_naive_refused)
audit_limit_clamped = edit_audit_query(_limit_clamped)
audit_action_ignored = edit_audit_query(_action_ignored)
