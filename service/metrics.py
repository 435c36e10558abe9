"""Prometheus metrics and the per-request context (request id, access log line, RED metrics).

Metric names are a contract with the alert rules and dashboards generated from ``load/slos.toml``:
``http_requests_total{method,route,status}``, ``http_request_duration_seconds{route}`` (with 0.05 and
1.2 buckets so the seed's latency SLOs are exact bucket ratios), ``http_errors_total{method,route}``
(5xx only), ``webhook_duration_seconds{outcome}`` (per delivery attempt), ``rate_limit_breaches_total``
and ``rate_limiter_backend{backend}``. Labels are bounded: routes are templates, methods outside the
HTTP set collapse to OTHER, workspaces come from configuration.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import reset_request_id, set_request_id

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.2, 1.5, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
UNMATCHED_ROUTE = "<unmatched>"

access_log = logging.getLogger("relay.access")


class Metrics:
    """The service's metrics, in a registry of its own (one per app, so tests can build many)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests", "HTTP responses sent", ["method", "route", "status"], registry=r
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response end",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("http_errors", "HTTP 5xx responses sent", ["method", "route"], registry=r)
        self.webhook_duration = Histogram(
            "webhook_duration_seconds",
            "Duration of one webhook delivery attempt",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "webhook_deliveries", "Webhook deliveries by final status", ["status"], registry=r
        )
        self.breaches = Counter(
            "rate_limit_breaches", "Executes refused by the rate limiter", ["workspace"], registry=r
        )
        self.limiter_backend = Gauge(
            "rate_limiter_backend", "1 for the rate limiter backend in use", ["backend"], registry=r
        )
        self.audit_failures = Counter(
            "audit_write_failures", "Audit log writes that failed", ["stage"], registry=r
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self.set_limiter_backend("memory")

    def observe_request(self, method: str, route: str, status: int, elapsed_s: float) -> None:
        # labels() takes a lock and builds a key each call; the label sets are few, so keep the children
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method=method, route=route, status=str(status)),
                self.duration.labels(route=route),
                self.errors.labels(method=method, route=route) if status >= 500 else None,
            )
            self._request_children[key] = children
        counter, histogram, errors = children
        counter.inc()
        histogram.observe(elapsed_s)
        if errors is not None:
            errors.inc()

    def set_limiter_backend(self, backend: str) -> None:
        for name in ("redis", "memory"):
            self.limiter_backend.labels(backend=name).set(1 if name == backend else 0)

    def observe_webhook(self, duration_s: float, outcome: str) -> None:
        self.webhook_duration.labels(outcome=outcome).observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID`` on the response, in every log line), counts it, logs it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Always minted here: a client-supplied id is never trusted (it would let a caller make two
        # deliveries share an X-Request-ID).
        rid = str(uuid.uuid4())
        token = set_request_id(rid)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
                raw = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                raw.append((b"x-request-id", rid.encode("ascii")))
                message["headers"] = raw
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # ServerErrorMiddleware has already answered 500 and the handler logged the traceback;
            # re-raising would only make the server log it twice.
            if not started:
                raise
        finally:
            elapsed = time.perf_counter() - start
            method = scope.get("method", "GET")
            method = method if method in KNOWN_METHODS else "OTHER"
            route = route_label(scope)
            self.metrics.observe_request(method, route, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            reset_request_id(token)
