"""GET /metrics in Prometheus' text format. Public, as scrapers expect, unless
DRAGON_METRICS_TOKEN is set: then it needs `Authorization: Bearer <that token>`.
It shows counts and durations only: no identifiers, no payloads, no secrets."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from dragon.api import metrics
from dragon.api.access import GuardedRoute, bearer_token
from dragon.domain.errors import Unauthenticated
from dragon.store.breaker_board import worst

router = APIRouter(tags=["health"], route_class=GuardedRoute)


@router.get("/metrics", response_class=Response)
async def metrics_page(request: Request) -> Response:
    state = request.app.state
    expected: str | None = state.metrics_token
    if expected is not None:
        given = bearer_token(request) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthenticated("/metrics needs its bearer token", code="metrics_token_invalid")
    snapshot = await state.operational_stats.snapshot()
    fleet = (await state.readiness.report()).fleet_breakers
    breakers = worst(state.breaker_states(), *fleet.values())
    metrics.publish(snapshot, breakers=breakers, now=state.clock())
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
