"""Webhook receivers. Public routes: each one authenticates its sender by the sender's own
mechanism (HMAC signature or token) before anything is parsed or stored."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dragon.api.access import GuardedRoute, services
from dragon.services.container import Services
from dragon.services.ingest import Receipt

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=GuardedRoute)
_RECEIPT_DOC: dict[int | str, dict[str, Any]] = {
    202: {"description": "stored durably; processing follows (or `ignored` with a reason)"},
    200: {"description": "a redelivery: the original delivery's id and state; nothing changed"},
    401: {"description": "signature or token missing or wrong"},
}


def receipt_response(receipt: Receipt) -> Response:
    body: dict[str, Any] = {
        "status": receipt.status,
        "delivery_id": receipt.delivery_id,
        "event_type": receipt.event_type,
        "delivery_status": receipt.delivery_status,
    }
    if receipt.reason:
        body["reason"] = receipt.reason
    if receipt.duplicate:
        body["result"] = receipt.result
    return Response(
        orjson.dumps(body),
        status_code=200 if receipt.duplicate else 202,
        media_type="application/json",
    )


async def _receive(source: str, request: Request, svc: Services) -> Response:
    body = await request.body()
    headers = dict(request.headers)  # Starlette gives the names lower-cased
    svc.ingest.authenticate(source, headers=headers, body=body)
    if source == "github" and headers.get("x-github-event") == "ping":
        return Response(orjson.dumps({"status": "pong"}), media_type="application/json")
    return receipt_response(await svc.ingest.receive(source, headers=headers, body=body))


@router.post("/github", status_code=202, responses=_RECEIPT_DOC)
async def github_webhook(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    """GitHub: `X-Hub-Signature-256` is required; deduplicated on `X-GitHub-Delivery`."""
    return await _receive("github", request, svc)


@router.post("/gitlab", status_code=202, responses=_RECEIPT_DOC)
async def gitlab_webhook(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    """GitLab Pipeline and Job hooks: `X-Gitlab-Token`; deduplicated on `X-Gitlab-Event-UUID`."""
    return await _receive("gitlab", request, svc)


@router.post("/jenkins", status_code=202, responses=_RECEIPT_DOC)
async def jenkins_webhook(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    """Jenkins Notification plugin: HMAC signature or bearer token; deduplicated on job, build
    number and phase."""
    return await _receive("jenkins", request, svc)


@router.post("/alertmanager", status_code=202, responses=_RECEIPT_DOC)
async def alertmanager_webhook(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    """Prometheus Alertmanager webhook (version 4), bearer token; one signal per alert."""
    return await _receive("alertmanager", request, svc)
