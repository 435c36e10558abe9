"""Dependency aliases for the routes: the service state, the authenticated caller, the admin check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from service.audit import AuditLog
from service.auth import KeyRing, Principal
from service.config import Settings
from service.delivery import WebhookDeliverer
from service.errors import Problem
from service.limiter import Decision
from service.metrics import Metrics
from service.preview import PreviewSigner


class Limiter(Protocol):
    """What the routes need of a rate limiter (service.limiter.FallbackRateLimiter in production)."""

    @property
    def backend(self) -> str: ...

    async def hit(self, workspace: str) -> Decision: ...

    async def aclose(self) -> None: ...


@dataclass
class Relay:
    """Everything a request handler may use, built once per app by create_app."""

    settings: Settings
    keyring: KeyRing
    limiter: Limiter
    audit: AuditLog | None
    deliverer: WebhookDeliverer
    metrics: Metrics
    previews: PreviewSigner


# Dependencies take the Request and nothing else: FastAPI resolves each nested dependency on every
# request, and on the hot path (GET /actions) that resolution cost more than the handler itself.


async def get_relay(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


RelayDep = Annotated[Relay, Depends(get_relay)]


async def get_principal(request: Request) -> Principal:
    relay: Relay = request.app.state.relay
    return relay.keyring.authenticate(request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_admin(request: Request) -> Principal:
    principal = await get_principal(request)
    if not principal.is_admin:
        raise Problem(403, "this endpoint needs an admin key")
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]

# The bearer scheme, declared in /openapi.json by create_app; routes that authenticate reference it.
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: Authorization: Bearer <key>",
}
AUTHENTICATED: dict[str, Any] = {"security": [{"apiKey": []}]}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI response entries for problem+json errors a route can answer with."""
    descriptions = {
        400: "The body could not be read (not UTF-8 JSON, or a malformed Content-Length)",
        401: "Missing or unknown API key",
        403: "The key's role may not do this",
        413: "Request body too large",
        422: "The request is invalid",
        429: "Rate limit exceeded for this workspace",
        502: "The webhook could not be delivered",
        503: "A dependency is unavailable; retry after Retry-After",
    }
    return {
        code: {
            "description": descriptions.get(code, "Error"),
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }
