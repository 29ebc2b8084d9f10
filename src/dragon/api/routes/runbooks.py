"""Runbooks: register a manifest version (admin), read them, and ask for a run (developer),
which becomes a decision under policy like any other."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import Field
from starlette.responses import Response as HttpResponse

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.decision_bodies import decision_response
from dragon.api.responses import json_response
from dragon.api.schemas import (
    Branch,
    DecisionOut,
    Name,
    Repo,
    Request,
    Response,
    RunbookVersion,
)
from dragon.domain.entities import Runbook
from dragon.services.container import Services
from dragon.services.context import Caller

router = APIRouter(tags=["runbooks"], route_class=GuardedRoute)
RunbookName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


class RunbookOut(Response):
    id: str
    name: str
    version: str
    description: str
    manifest: dict[str, Any]
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, runbook: Runbook) -> RunbookOut:
        return cls.trusted(runbook)


class RunbookList(Response):
    items: list[RunbookOut]


class RunbookRunIn(Request):
    version: RunbookVersion | None = None
    parameters: dict[str, Any] = Field(default_factory=dict, max_length=30)
    incident_id: Name | None = None
    repo: Repo | None = None
    branch: Branch | None = None
    environment: Name | None = None


@router.post("/api/v1/runbooks", status_code=201, response_model=RunbookOut)
async def register_runbook(
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
    manifest: Annotated[dict[str, Any], Body(description="the runbook manifest")],
) -> HttpResponse:
    """Register one version of a runbook. Every problem is listed in `errors[]` with the field,
    the expected format and an example; unknown fields are refused. A name and version that
    exist already answer 409 `runbook_version_exists`: versions are immutable."""
    runbook = await svc.runbooks.register(who, manifest)
    return json_response(
        RunbookOut.of(runbook),
        status_code=201,
        headers={"Location": f"/api/v1/runbooks/{runbook.name}"},
    )


@router.get("/api/v1/runbooks", response_model=RunbookList)
async def list_runbooks(svc: Annotated[Services, Depends(services)]) -> HttpResponse:
    """The newest version of every runbook."""
    return json_response(RunbookList(items=[RunbookOut.of(r) for r in await svc.runbooks.latest()]))


@router.get("/api/v1/runbooks/{name}", response_model=RunbookList)
async def runbook_versions(
    name: RunbookName, svc: Annotated[Services, Depends(services)]
) -> HttpResponse:
    """Every version of one runbook, newest first."""
    versions = await svc.runbooks.versions(name)
    return json_response(RunbookList(items=[RunbookOut.of(r) for r in versions]))


@router.post("/api/v1/runbooks/{name}/runs", status_code=201, response_model=DecisionOut)
async def start_runbook(
    name: RunbookName,
    body: RunbookRunIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> HttpResponse:
    """Propose running the runbook (its newest version unless `version` is given) with typed
    `parameters`; the decision goes through policy and approvals, and the run worker carries
    the steps out once it may."""
    decision = await svc.runbooks.start(
        who,
        name,
        version=body.version,
        parameters=body.parameters,
        incident_id=body.incident_id,
        repo=body.repo,
        branch=body.branch,
        environment=body.environment,
    )
    return decision_response(
        decision, [], status_code=201, headers={"Location": f"/api/v1/decisions/{decision.id}"}
    )
