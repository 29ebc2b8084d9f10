"""Notifications for admins: what was sent where, what failed (and why), and retrying a failed
one. Channel targets are shown masked: their URLs carry secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.responses import json_response
from dragon.api.routes.incidents import Cursor, Limit
from dragon.api.schemas import Response as Out
from dragon.domain.entities import Notification
from dragon.domain.enums import NotificationStatus
from dragon.domain.ports import NotificationQuery, Page
from dragon.services.container import Services
from dragon.services.context import Caller

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"], route_class=GuardedRoute)


class NotificationOut(Out):
    id: str
    event: str
    incident_id: str | None
    decision_id: str | None
    channel: str
    channel_type: str
    target: str
    route: str
    status: NotificationStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, item: Notification, svc: Services) -> NotificationOut:
        kind, target = svc.notifications.target_of(item.channel)
        return cls.trusted(item, channel_type=kind, target=target)


class NotificationPage(Out):
    items: list[NotificationOut]
    next_cursor: str | None


@router.get("", response_model=NotificationPage)
async def list_notifications(
    svc: Annotated[Services, Depends(services)],
    status: NotificationStatus | None = None,
    incident_id: Annotated[str | None, Query(max_length=40)] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    """Newest first; `?status=failed` lists the ones that gave up."""
    items, next_cursor = await svc.notifications.find(
        NotificationQuery(
            status=status,
            incident_id=incident_id,
            channel=channel,
            page=Page(limit=limit, after=cursor),
        )
    )
    return json_response(
        NotificationPage(items=[NotificationOut.of(n, svc) for n in items], next_cursor=next_cursor)
    )


@router.get("/{notification_id}", response_model=NotificationOut)
async def get_notification(
    notification_id: str, svc: Annotated[Services, Depends(services)]
) -> Response:
    return json_response(NotificationOut.of(await svc.notifications.get(notification_id), svc))


@router.post("/{notification_id}/retry", response_model=NotificationOut)
async def retry_notification(
    notification_id: str,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Send a failed notification again, attempts reset (audited)."""
    item = await svc.notifications.retry(who, notification_id)
    return json_response(NotificationOut.of(item, svc))
