"""The app factory: ``create_app(settings)`` builds the relay service from one Settings object.

Middleware, outermost first::

    SecurityHeadersMiddleware   every response, the unhandled-500 one included, gets the header set
    RequestContextMiddleware    request id, access log, RED metrics
    ServerErrorMiddleware       (Starlette) turns an unhandled exception into our problem+json 500
    BodyLimitMiddleware         413 before any route reads an oversized body
    ExceptionMiddleware         (Starlette) Problem / HTTPException / validation errors -> problem+json
    router

The parts a request uses (limiter, audit log, deliverer) can be passed in: tests use that to run the
real service with one part swapped, which is how the gate proves it catches a defective service.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from service import __version__
from service.audit import AuditLog
from service.auth import AuthBeforeBodyMiddleware, KeyRing
from service.bodylimit import BodyLimitMiddleware
from service.config import Settings
from service.delivery import WebhookDeliverer
from service.deps import SECURITY_SCHEME, Limiter, Relay
from service.errors import install_handlers, problem_body
from service.headers import SecurityHeadersMiddleware, profile_headers
from service.limiter import build_limiter
from service.metrics import Metrics, RequestContextMiddleware
from service.preview import PreviewSigner, preview_key
from service.routes import actions, audit, health, metrics

log = logging.getLogger("relay")

# routes whose JSON body must not be parsed for a caller that has not authenticated
BODY_ROUTES = frozenset({"/actions/preview", "/actions/execute"})
EXAMPLE_REQUEST_ID = "5f0c6b7e-2f4a-4d8e-9a31-7c2d1e0b9f48"


class RelayApp(FastAPI):
    """FastAPI whose outermost layers are ours, outside Starlette's ServerErrorMiddleware."""

    def __init__(self, *, security_headers: dict[str, str], metrics: Metrics, **kwargs: Any) -> None:
        self._security_headers = security_headers
        self._metrics = metrics
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return SecurityHeadersMiddleware(
            RequestContextMiddleware(inner, self._metrics), self._security_headers
        )


def _problem_schema() -> dict[str, Any]:
    # A fixed request id: problem_body would put in the id of whichever request first asked for
    # /openapi.json, and the document (built once, then cached) would differ from process to process.
    example = {
        **problem_body(429, "workspace default has used its 60 executes for this 60 s window"),
        "request_id": EXAMPLE_REQUEST_ID,
    }
    return {
        "type": "object",
        "title": "Problem",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
        },
        "additionalProperties": True,
        "example": example,
    }


def create_app(
    settings: Settings | None = None,
    *,
    limiter: Limiter | None = None,
    limiter_factory: Callable[[Settings, Callable[[str], None]], Limiter] | None = None,
    audit_log: AuditLog | None = None,
    deliverer: WebhookDeliverer | None = None,
) -> FastAPI:
    settings = settings or Settings()
    metrics_ = Metrics()

    if limiter is None:
        if limiter_factory is None:
            limiter = build_limiter(settings, on_backend_change=metrics_.set_limiter_backend)
        else:
            limiter = limiter_factory(settings, metrics_.set_limiter_backend)
    metrics_.set_limiter_backend(limiter.backend)
    if audit_log is None and settings.database_url is not None:
        audit_log = AuditLog(
            settings.database_url.get_secret_value(),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            timeout_s=settings.db_timeout_s,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
    if deliverer is None:
        deliverer = WebhookDeliverer(
            keys=settings.signing_keys,
            allowed_hosts=settings.allowed_hosts,
            timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s,
            on_attempt=metrics_.observe_webhook,
        )
    deliverer.warn_if_unsigned(log)

    relay = Relay(
        settings=settings,
        keyring=KeyRing(settings.all_keys),
        limiter=limiter,
        audit=audit_log,
        deliverer=deliverer,
        metrics=metrics_,
        previews=PreviewSigner(preview_key(settings), ttl_s=settings.preview_ttl_s),
    )
    if not len(relay.keyring):
        log.warning("no API keys are configured (ADMIN_KEY, DEV_KEY, API_KEYS): every call will be 401")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if relay.audit is not None:
            await relay.audit.open()
        try:
            yield
        finally:
            await relay.limiter.aclose()
            await relay.deliverer.aclose()
            if relay.audit is not None:
                await relay.audit.close()

    app = RelayApp(
        security_headers=profile_headers(settings.security_headers_profile),
        metrics=metrics_,
        title="relay",
        version=__version__,
        description="The relay reference service: hardened actions API verified by relay-gate.",
        docs_url=None,  # no HTML UI: the API's CSP forbids it, and /openapi.json is what tools read
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.relay = relay
    # added last = runs first: the body limit, then authentication, then the route parses the body
    app.add_middleware(AuthBeforeBodyMiddleware, keyring=relay.keyring, paths=BODY_ROUTES)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_handlers(app)
    # hot routes first: Starlette matches routes in order
    for module in (actions, audit, health, metrics):
        app.include_router(module.router)

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base_openapi()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["Problem"] = _problem_schema()
            components.setdefault("securitySchemes", {})["apiKey"] = SECURITY_SCHEME
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
