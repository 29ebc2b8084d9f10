"""Incidents: open, list, read, acknowledge, resolve."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.responses import json_list_response, json_page_response, json_response
from dragon.api.schemas import IncidentCreate, IncidentOut, IncidentPage, IncidentResolve
from dragon.api.schemas import Response as Out
from dragon.domain.enums import IncidentStatus, Severity
from dragon.domain.ports import IncidentQuery, Page
from dragon.services.container import Services
from dragon.services.context import Caller
from dragon.services.incidents import NewIncident

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"], route_class=GuardedRoute)
Cursor = Annotated[str | None, Query(pattern=r"^[a-z]{3}_[0-9a-f]{28}$", description="next_cursor")]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.post("", status_code=201, response_model=IncidentOut)
async def open_incident(
    body: IncidentCreate,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    incident = await svc.incidents.open(who, NewIncident(**body.model_dump()))
    return json_response(
        IncidentOut.of(incident),
        status_code=201,
        headers={"Location": f"/api/v1/incidents/{incident.id}"},
    )


@router.get("", response_model=IncidentPage)
async def list_incidents(
    svc: Annotated[Services, Depends(services)],
    status: IncidentStatus | None = None,
    severity: Severity | None = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    repo: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="text in title or description")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    items, next_cursor = await svc.incidents.find(
        IncidentQuery(
            status=status,
            severity=severity,
            source=source,
            repo=repo,
            text=q or None,
            page=Page(limit=limit, after=cursor),
        )
    )
    return json_page_response(IncidentOut, items, next_cursor=next_cursor)


@router.get("/{incident_id}", response_model=IncidentOut)
async def get_incident(incident_id: str, svc: Annotated[Services, Depends(services)]) -> Response:
    return json_response(IncidentOut.of(await svc.incidents.get(incident_id)))


@router.post("/{incident_id}/acknowledge", response_model=IncidentOut)
async def acknowledge_incident(
    incident_id: str,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    return json_response(IncidentOut.of(await svc.incidents.acknowledge(who, incident_id)))


@router.post("/{incident_id}/resolve", response_model=IncidentOut)
async def resolve_incident(
    incident_id: str,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
    body: Annotated[IncidentResolve | None, Body()] = None,
) -> Response:
    note = body.note if body else ""
    return json_response(IncidentOut.of(await svc.incidents.resolve(who, incident_id, note=note)))


class SignalOut(Out):
    id: str
    delivery_id: str
    source: str
    kind: str
    title: str
    severity: Severity
    occurred_at: datetime
    repo: str | None
    branch: str | None
    commit_sha: str | None
    pipeline: str | None
    job: str | None
    url: str | None
    environment: str | None
    labels: dict[str, str]
    log_excerpt: str


class LinkOut(Out):
    linked_id: str
    reason: str
    created_at: datetime


@router.get("/{incident_id}/signals", response_model=list[SignalOut])
async def incident_signals(
    incident_id: str,
    svc: Annotated[Services, Depends(services)],
    limit: Limit = 100,
) -> Response:
    """The signals grouped into this incident, newest first, with their evidence."""
    found = await svc.incidents.signals(incident_id, limit=limit)
    return json_list_response([SignalOut.trusted(s) for s in found])


@router.get("/{incident_id}/links", response_model=list[LinkOut])
async def incident_links(incident_id: str, svc: Annotated[Services, Depends(services)]) -> Response:
    """Related incidents: `recurrence_of` (the same failure, resolved before) and
    `same_commit` (another source, the same commit)."""
    found = await svc.incidents.links(incident_id)
    return json_list_response([LinkOut.trusted(link) for link in found])
