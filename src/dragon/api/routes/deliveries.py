"""The inbox for admins: list deliveries (dead ones first of all), read one, retry a dead one."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.responses import json_response
from dragon.api.routes.incidents import Cursor, Limit
from dragon.api.schemas import Response as Out
from dragon.domain.entities import Delivery
from dragon.domain.enums import DeliveryStatus
from dragon.domain.ports import DeliveryQuery, Page
from dragon.services.container import Services
from dragon.services.context import Caller

router = APIRouter(prefix="/api/v1/deliveries", tags=["deliveries"], route_class=GuardedRoute)


class DeliveryOut(Out):
    id: str
    source: str
    delivery_key: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    result: dict[str, Any]
    body_base64: str | None = None

    @classmethod
    def of(cls, delivery: Delivery, *, with_body: bool = False) -> DeliveryOut:
        body = base64.b64encode(delivery.body).decode() if with_body else None
        return cls.trusted(delivery, body_base64=body)


class DeliveryPage(Out):
    items: list[DeliveryOut]
    next_cursor: str | None


@router.get("", response_model=DeliveryPage)
async def list_deliveries(
    svc: Annotated[Services, Depends(services)],
    status: DeliveryStatus | None = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    items, next_cursor = await svc.ingest.find(
        DeliveryQuery(status=status, source=source, page=Page(limit=limit, after=cursor))
    )
    return json_response(
        DeliveryPage(items=[DeliveryOut.of(d) for d in items], next_cursor=next_cursor)
    )


@router.get("/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(delivery_id: str, svc: Annotated[Services, Depends(services)]) -> Response:
    """One delivery with its raw body (base64), as received."""
    return json_response(DeliveryOut.of(await svc.ingest.get(delivery_id), with_body=True))


@router.post("/{delivery_id}/retry", response_model=DeliveryOut)
async def retry_delivery(
    delivery_id: str,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Send a dead delivery back to the worker with its attempts reset."""
    return json_response(DeliveryOut.of(await svc.ingest.retry(who, delivery_id)))
