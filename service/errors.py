"""Every error the relay service answers with is an RFC 9457 ``application/problem+json`` body.

    Problem (an HTTP error we mean to send)
      raised by routes and dependencies; carries status, title, detail, extra headers and fields.

The handlers below turn Starlette's HTTPException (404, 405), FastAPI's validation errors (422) and
any unhandled exception (500) into the same shape, so a client never has to parse two formats.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.logs import current_request_id

log = logging.getLogger("relay.errors")

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An HTTP error response we mean to send."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title or _TITLES.get(status, "Error")
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_body(status: int, detail: str, *, title: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    rid = current_request_id()
    if rid:
        body["request_id"] = rid
    body.update(extra)
    return body


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, title=title, **extra),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_TYPE,
    )


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.detail, title=exc.title, headers=exc.headers, **exc.extra)


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def _allow(request: Request, starlette_allow: str | None) -> str | None:
    """``Allow`` for a 405: every method of the path, not only those of the first route matching it.

    Starlette names the methods of the first route whose path matches, so a path served by two routes
    (``GET`` and ``HEAD /_stcore/health``) advertised only one. RFC 9110 15.5.6 wants them all: the
    union of Starlette's and the methods the OpenAPI document gives the path.
    """
    methods = {m.strip().upper() for m in (starlette_allow or "").split(",") if m.strip()}
    openapi = getattr(request.app, "openapi", None)
    paths = openapi().get("paths", {}) if callable(openapi) else {}
    documented = paths.get(request.scope.get("path"), {})
    methods |= {m.upper() for m in documented if m.upper() in _METHOD_ORDER}
    if not methods:
        return starlette_allow
    known = [m for m in _METHOD_ORDER if m in methods]
    return ", ".join(known + sorted(methods - set(known)))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allow = _allow(request, headers.pop("Allow", None) or headers.pop("allow", None))
        if allow is not None:
            headers["Allow"] = allow
    return problem_response(exc.status_code, detail, headers=headers)


def _error_entries(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The offending input is deliberately not echoed back: it can be large, and it can be a secret
    # pasted into the wrong field.
    out = []
    for err in exc.errors()[:20]:
        loc = [str(p) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return out


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _error_entries(exc)
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    return problem_response(422, f"{where}: {first['msg']}", errors=errors)


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    # ServerErrorMiddleware calls this for anything that escaped the routes; it re-raises afterwards
    # so the server still logs the traceback. The body says nothing about the internals.
    log.error("unhandled exception", exc_info=exc)
    return problem_response(500, "the server failed to handle this request; it has been logged")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unhandled)
