"""Liveness and readiness, unauthenticated, as the seed's ``/_stcore/*`` paths."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.audit import AuditUnavailable
from service.deps import RelayDep, problem_responses
from service.errors import problem_response

router = APIRouter(tags=["health"])


@router.get("/_stcore/health", summary="Liveness: touches no dependency", operation_id="health")
@router.head("/_stcore/health", summary="Liveness (HEAD, as curl -I sends)", operation_id="health_head")
async def health() -> dict[str, bool]:
    return {"ok": True}


@router.get(
    "/_stcore/ready",
    summary="Readiness: the audit database answers; Redis is reported (the limiter falls back without it)",
    responses=problem_responses(503),
)
async def ready(relay: RelayDep) -> Any:
    checks: dict[str, str] = {}
    down: list[str] = []
    if relay.audit is None:
        checks["database"] = "not configured (set DATABASE_URL)"
        down.append("database")
    else:
        try:
            await relay.audit.ping()
            checks["database"] = "ok"
        except AuditUnavailable:
            checks["database"] = "unavailable"
            down.append("database")
    if relay.settings.redis_url is None:
        checks["redis"] = "not configured (in-process rate limiter)"
    else:
        backend = relay.limiter.backend
        checks["redis"] = "ok" if backend == "redis" else "unavailable (in-process fallback active)"
    checks["rate_limiter"] = relay.limiter.backend
    if down:
        return problem_response(
            503, f"not ready: {', '.join(down)} unavailable", headers={"Retry-After": "5"}, checks=checks
        )
    return JSONResponse({"ok": True, "checks": checks})
