"""``GET /audit``: the audit log, for admin keys, filtered and paginated by cursor."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator

from service.audit import AuditUnavailable
from service.config import WORKSPACE_PATTERN
from service.deps import AUTHENTICATED, AdminDep, RelayDep, problem_responses
from service.errors import Problem

router = APIRouter(tags=["audit"])

MAX_LIMIT = 500

# RFC 3339 date-time; the offset may be left out (the time is then read as UTC). pydantic on its own
# would also take Unix seconds ("0.5") and bare dates, which the documented format does not admit.
_DATE_TIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _date_time_text(value: object) -> object:
    if isinstance(value, str) and _DATE_TIME_RE.fullmatch(value):
        return value
    raise ValueError("must be an RFC 3339 date-time such as 2025-10-07T12:00:00Z")


DateTimeQuery = Annotated[
    datetime | None,
    BeforeValidator(_date_time_text),
    Query(description="RFC 3339 date-time, e.g. 2025-10-07T12:00:00Z; without an offset it is read as UTC"),
]


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
    since: DateTimeQuery = None,
    until: DateTimeQuery = None,
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
