"""The dashboard's figures as JSON, and as a server-sent-events stream for live views."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse

from dragon.api.access import GuardedRoute, services
from dragon.api.problems import correlation_id_of, problem
from dragon.domain.dashboard import figures_payload
from dragon.domain.ports import LiveEvent
from dragon.services.container import Services

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], route_class=GuardedRoute)
TOPIC = "dashboard"
HEARTBEAT_SECONDS = 15.0


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.get("")
async def dashboard(svc: Annotated[Services, Depends(services)]) -> Response:
    """Open incidents by severity and source, MTTA, MTTR, auto-remediation rate, approval
    latency and incidents per day, over the last 30 days."""
    payload = figures_payload(await svc.dashboard.figures())
    return Response(orjson.dumps(payload), media_type="application/json")


async def _events(request: Request, svc: Services) -> AsyncIterator[bytes]:
    # Retry after 3 s if the connection drops; the browser's EventSource reconnects by itself.
    yield b"retry: 3000\n\n"
    yield sse(TOPIC, figures_payload(await svc.dashboard.figures()))
    async with svc.live.subscribe() as queue:
        while not await request.is_disconnected():
            try:
                event: LiveEvent = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if event.topic == TOPIC:
                yield sse(TOPIC, event.data)


@router.get("/stream", response_model=None)
async def dashboard_stream(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    """Server-sent events: a `dashboard` event with the figures now, then one on every change.
    Send `Accept: text/event-stream` (an EventSource does); other clients get a 406."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        return problem(
            406,
            "event_stream_required",
            "this is a server-sent-events stream; send Accept: text/event-stream",
            correlation_id=correlation_id_of(request),
        )
    return StreamingResponse(
        _events(request, svc),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
