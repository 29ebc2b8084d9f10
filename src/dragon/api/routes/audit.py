"""The audit log: list events with filters, and verify the hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from dragon.api.access import GuardedRoute, services
from dragon.api.responses import json_response
from dragon.api.schemas import AuditEventOut, AuditPage, ChainOut
from dragon.domain.ports import AuditQuery
from dragon.services.container import Services

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=GuardedRoute)


@router.get("", response_model=AuditPage)
async def list_audit_events(
    svc: Annotated[Services, Depends(services)],
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor_id: Annotated[str | None, Query(max_length=128)] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=1, description="next_cursor: events before seq")] = None,
) -> Response:
    events = await svc.audit.find(
        AuditQuery(
            action=action,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            since=since,
            until=until,
            after_seq=cursor,
            limit=limit,
        )
    )
    next_cursor = str(events[-1].seq) if len(events) == limit and events[-1].seq > 1 else None
    return json_response(
        AuditPage(items=[AuditEventOut.of(e) for e in events], next_cursor=next_cursor)
    )


@router.get("/verify", response_model=ChainOut)
async def verify_audit_chain(svc: Annotated[Services, Depends(services)]) -> ChainOut:
    """Walks the whole chain: "ok", or the first seq where an event was edited, deleted or
    reordered."""
    report = await svc.audit.verify()
    return ChainOut(
        status="ok" if report.ok else "broken",
        checked=report.checked,
        first_broken_seq=report.first_broken_seq,
        reason=report.reason,
    )
