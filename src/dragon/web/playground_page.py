"""The playground page: anyone may try the risk model and default policy, without logging in."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dragon.api.access import GuardedRoute, services
from dragon.api.sessions import SESSION_COOKIE
from dragon.domain.errors import DragonError
from dragon.services.container import Services
from dragon.web.rendering import render

router = APIRouter(route_class=GuardedRoute, include_in_schema=False)


@router.get("/playground")
async def playground_page(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    codec = request.app.state.sessions
    session = codec.decode(request.cookies.get(SESSION_COOKIE))
    principal = None
    if session is not None:
        with contextlib.suppress(DragonError):
            principal = await svc.auth.principal_for_key(session.key_id)
    return render(
        request,
        "playground.html",
        principal=principal,
        scenarios=svc.playground.scenarios(),
        actions=svc.playground.actions(),
        stats=svc.playground.stats(),
    )
