"""Slack interactivity: the Approve and Reject buttons of Dragon's messages. A public route,
authenticated by Slack's request signature before anything is parsed; the verdict then goes
through the same use case as the API's approve and reject."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dragon.api.access import GuardedRoute, services
from dragon.api.problems import correlation_id_of
from dragon.domain.errors import Unauthenticated
from dragon.services.container import Services

router = APIRouter(prefix="/integrations/slack", tags=["slack"], route_class=GuardedRoute)


@router.post("/actions")
async def slack_actions(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    """Slack `block_actions`: 200 with an ephemeral message for the person who pressed."""
    body = await request.body()
    svc.notify.verify_chat(headers=dict(request.headers), body=body)
    if svc.notify.parse_chat is None:
        raise Unauthenticated(
            "Slack interactivity is not configured", code="slack_signature_invalid"
        )
    action = svc.notify.parse_chat(body)
    reply = await svc.chat.handle(
        action,
        correlation_id=correlation_id_of(request),
        client_address=request.client.host if request.client else None,
    )
    answer = {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": reply.text,
        "dragon": {"accepted": reply.accepted, "code": reply.code},
    }
    return Response(orjson.dumps(answer), media_type="application/json")
