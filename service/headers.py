"""Security headers on every response — 2xx, 4xx, 429 and an unhandled 500 alike (seed item 3).

A pure ASGI middleware that edits the ``http.response.start`` message: it sees every response the
application sends, including those produced by exception handlers and by Starlette's
ServerErrorMiddleware, which ``BaseHTTPMiddleware`` (and any middleware added with
``app.add_middleware``) sits inside of and so misses. :func:`service.app.create_app` wraps the whole
middleware stack with it.

Two profiles (``SECURITY_HEADERS_PROFILE``):

- ``strict`` (default): OWASP Secure Headers Project values for a JSON API. ``X-XSS-Protection: 0``
  because the legacy XSS auditor it controls caused vulnerabilities and is gone from browsers; a
  CSP of ``default-src 'none'`` because an API serves no scripts, styles or frames.
- ``seed``: the exact values of the sprint-51 report, kept for fidelity with what was deployed.
  Its HSTS ``max-age=15552000; includeSubDomains; preload`` is *not* accepted by the HSTS preload
  list (hstspreload.org requires ``max-age`` of at least 31536000 seconds, one year, together with
  ``includeSubDomains`` and ``preload``): the ``preload`` token there promises something the list
  will refuse. The gate reports this as a finding.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SEED_CSP = (
    "default-src 'self'; connect-src 'self' https://relay-production-f2a6.up.railway.app "
    "https://*.vercel.app; img-src 'self' data:; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

PROFILES: dict[str, dict[str, str]] = {
    "seed": {
        "Strict-Transport-Security": "max-age=15552000; includeSubDomains; preload",
        "Content-Security-Policy": SEED_CSP,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "X-XSS-Protection": "1; mode=block",
        "Cache-Control": "no-store",
    },
    "strict": {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
        "Content-Security-Policy": STRICT_CSP,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "X-XSS-Protection": "0",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
        "Permissions-Policy": (
            "accelerometer=(), camera=(), geolocation=(), microphone=(), payment=(), usb=()"
        ),
        "X-Permitted-Cross-Domain-Policies": "none",
        "Cache-Control": "no-store",
    },
}

# Headers that advertise the implementation; removed from every response.
STRIPPED = ("server", "x-powered-by")


def profile_headers(profile: str) -> dict[str, str]:
    try:
        return dict(PROFILES[profile])
    except KeyError:
        raise ValueError(
            f"unknown security header profile {profile!r}; use one of {sorted(PROFILES)}"
        ) from None


class SecurityHeadersMiddleware:
    """Sets each configured header exactly once on every HTTP response and strips ``Server``."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)
        # Encoded once: this runs on every response, so it is a list filter and a concatenation.
        self._raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        self._drop = frozenset(k for k, _ in self._raw) | {s.encode("latin-1") for s in STRIPPED}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                drop = self._drop
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in drop]
                # every configured header exactly once, whatever the route set before
                message["headers"] = kept + self._raw
            await send(message)

        await self.app(scope, receive, send_with_headers)
