"""``/actions``: list the catalogue, preview an action, execute it (rate limited, audited, signed)."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.actions import CATALOG, ActionRequest, PreviewRef, ResolvedAction
from service.audit import AuditUnavailable
from service.auth import Principal
from service.config import destination_allowed
from service.deps import AUTHENTICATED, PrincipalDep, Relay, RelayDep, get_principal, problem_responses
from service.errors import Problem
from service.limiter import rate_limit_headers
from service.logs import current_request_id
from service.preview import PreviewTokenError
from service.signing import new_webhook_id

router = APIRouter(tags=["actions"])
log = logging.getLogger("relay.actions")

AUDIT_RETRY_AFTER_S = 5


class ActionInfo(BaseModel):
    id: str
    description: str
    parameters: dict[str, Any]


class ActionList(BaseModel):
    actions: list[ActionInfo]


class PreviewResult(BaseModel):
    preview_id: str
    action: str
    workspace: str
    destination_host: str
    content_type: Literal["application/json"] = "application/json"
    body: str
    body_sha256: str
    expires_in_s: int


class DeliveryInfo(BaseModel):
    status: Literal["delivered", "failed"]
    http_status: int | None
    attempts: int


class ExecuteResult(BaseModel):
    request_id: str
    webhook_id: str
    action: str
    workspace: str
    delivery: DeliveryInfo
    latency_ms: float


def _resolve(relay: Relay, req: ActionRequest, principal: Principal) -> ResolvedAction:
    destination = req.destination or relay.settings.webhook_url
    if destination is None:
        raise Problem(503, "no webhook destination is configured on the server (WEBHOOK_URL)")
    if not destination_allowed(destination, relay.settings.allowed_hosts):
        raise Problem(
            422,
            "destination must be an http(s) URL without userinfo on an allowed webhook host "
            "(WEBHOOK_ALLOWED_HOSTS)",
        )
    return ResolvedAction(
        action=req.action,
        params=req.params.model_dump(mode="json"),
        workspace=principal.workspace,
        destination=destination,
    )


_ACTION_LIST = ActionList(actions=[ActionInfo(**spec.to_json()) for spec in CATALOG.values()])


@router.get(
    "/actions", summary="The available actions", responses=problem_responses(401), openapi_extra=AUTHENTICATED
)
async def list_actions(request: Request) -> ActionList:
    # authenticated inline rather than through Depends: this is the hottest route, and FastAPI's
    # dependency resolution was the largest single cost on it (bench/service_overhead.py)
    await get_principal(request)
    return _ACTION_LIST


@router.post(
    "/actions/preview",
    summary="Validate an action and show exactly what execute would deliver (no side effects)",
    responses=problem_responses(400, 401, 413, 422, 503),
    openapi_extra=AUTHENTICATED,
)
async def preview(
    req: Annotated[ActionRequest, Body()], principal: PrincipalDep, relay: RelayDep
) -> PreviewResult:
    action = _resolve(relay, req, principal)
    body = action.body()
    return PreviewResult(
        preview_id=relay.previews.mint(action),
        action=action.action,
        workspace=action.workspace,
        destination_host=urlsplit(action.destination).netloc,
        body=body.decode("utf-8"),
        body_sha256=hashlib.sha256(body).hexdigest(),
        expires_in_s=relay.previews.ttl_s,
    )


@router.post(
    "/actions/execute",
    summary="Run an action: rate limited per workspace, audited, delivered as a signed webhook",
    response_model=ExecuteResult,
    responses=problem_responses(400, 401, 413, 422, 429, 502, 503),
    openapi_extra=AUTHENTICATED,
)
async def execute(
    req: Annotated[ActionRequest | PreviewRef, Body()],
    principal: PrincipalDep,
    relay: RelayDep,
) -> Any:
    start = time.perf_counter()
    limit_headers: dict[str, str] = {}
    if relay.settings.rate_limit_enabled:
        decision = await relay.limiter.hit(principal.workspace)
        limit_headers = rate_limit_headers(decision)
        if not decision.allowed:
            relay.metrics.breaches.labels(workspace=principal.workspace).inc()
            raise Problem(
                429,
                f"workspace {principal.workspace} has used its {decision.limit} executes for this "
                f"{decision.window_s} s window; retry after {decision.retry_after} s",
                headers=limit_headers,
                extra={"limit": decision.limit, "retry_after_s": decision.retry_after},
            )

    if isinstance(req, PreviewRef):
        try:
            action = relay.previews.redeem(req.preview_id, workspace=principal.workspace)
        except PreviewTokenError as exc:
            raise Problem(422, str(exc), headers=limit_headers) from None
        if not destination_allowed(action.destination, relay.settings.allowed_hosts):
            raise Problem(422, "destination is no longer an allowed webhook host", headers=limit_headers)
    else:
        action = _resolve(relay, req, principal)

    request_id = current_request_id() or str(uuid.uuid4())
    webhook_id = new_webhook_id()

    # The audit row is written BEFORE the webhook goes out: if the audit log is unavailable nothing is
    # delivered, so there is never a side effect without its audit record.
    if relay.audit is None:
        raise Problem(503, "the audit log is not configured (DATABASE_URL); execute is disabled")
    try:
        row_id = await relay.audit.begin(
            request_id=uuid.UUID(request_id),
            webhook_id=webhook_id,
            workspace=action.workspace,
            action=action.action,
            role=principal.role,
        )
    except AuditUnavailable:
        relay.metrics.audit_failures.labels(stage="begin").inc()
        raise Problem(
            503,
            "the audit log is unavailable; nothing was delivered",
            headers={**limit_headers, "Retry-After": str(AUDIT_RETRY_AFTER_S)},
        ) from None

    result = await relay.deliverer.deliver(
        action.destination, action.body(), request_id=request_id, webhook_id=webhook_id
    )
    relay.metrics.webhook_deliveries.labels(status=result.status).inc()
    latency_ms = round((time.perf_counter() - start) * 1000, 3)
    try:
        await relay.audit.complete(
            row_id,
            status="ok" if result.status == "delivered" else "error",
            delivery_status=result.status,
            http_status=result.http_status,
            attempts=result.attempts,
            latency_ms=latency_ms,
        )
    except AuditUnavailable:
        # The row exists (status 'pending'), so the delivery is still on record; say so in the log.
        relay.metrics.audit_failures.labels(stage="complete").inc()
        log.error("audit row could not be completed", extra={"audit_row": row_id})

    outcome = ExecuteResult(
        request_id=request_id,
        webhook_id=webhook_id,
        action=action.action,
        workspace=action.workspace,
        delivery=DeliveryInfo(status=result.status, http_status=result.http_status, attempts=result.attempts),
        latency_ms=latency_ms,
    )
    if result.status != "delivered":
        raise Problem(
            502,
            f"the webhook could not be delivered after {result.attempts} attempt(s): {result.error}",
            headers=limit_headers,
            extra={"execution": outcome.model_dump()},
        )
    return JSONResponse(outcome.model_dump(), headers=limit_headers)
