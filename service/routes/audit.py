"""``GET /audit``: the audit log, for admin keys, filtered and paginated by cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from service.audit import AuditUnavailable
from service.config import WORKSPACE_PATTERN
from service.deps import AUTHENTICATED, AdminDep, RelayDep, problem_responses
from service.errors import Problem

router = APIRouter(tags=["audit"])

MAX_LIMIT = 500


class AuditPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def _utc(value: datetime | None) -> datetime | None:
    # a timestamp without an offset is read as UTC rather than as the server's local time
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@router.get(
    "/audit",
    summary="Audit records of executes, newest first (admin only)",
    responses=problem_responses(401, 403, 422, 503),
    openapi_extra=AUTHENTICATED,
)
async def read_audit(
    admin: AdminDep,
    relay: RelayDep,
    status: Literal["pending", "ok", "error"] | None = None,
    workspace: Annotated[str | None, Query(pattern=WORKSPACE_PATTERN)] = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AuditPage:
    if relay.audit is None:
        raise Problem(503, "the audit log is not configured (DATABASE_URL)")
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        raise Problem(422, "since must not be later than until")
    try:
        records, next_cursor = await relay.audit.query(
            status=status,
            workspace=workspace,
            action=action,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:  # a cursor that is not one of ours
        raise Problem(422, str(exc)) from None
    except AuditUnavailable:
        raise Problem(503, "the audit log is unavailable", headers={"Retry-After": "5"}) from None
    return AuditPage(items=[r.to_json() for r in records], next_cursor=next_cursor)
