"""Runs (executions of approved decisions) with their step logs, and the actions kill switch."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response as HttpResponse

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.responses import json_response
from dragon.api.routes.incidents import Cursor, Limit
from dragon.api.schemas import Reason, Request, Response
from dragon.domain.entities import Run
from dragon.domain.enums import RunStatus
from dragon.domain.execution import ActionsState
from dragon.domain.ports import Page, RunQuery
from dragon.services.container import Services
from dragon.services.context import Caller

router = APIRouter(tags=["runs"], route_class=GuardedRoute)


class RunSummaryOut(Response):
    id: str
    decision_id: str
    incident_id: str | None
    action: str
    status: RunStatus
    repo: str | None
    dry_run: bool
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    error_code: str | None
    error: str | None
    outcome: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunOut(RunSummaryOut):
    idempotency_key: str
    result: dict[str, Any]
    log: list[dict[str, Any]]

    @classmethod
    def of(cls, run: Run) -> RunOut:
        # A checkpoint is the worker's own bookkeeping, not part of the result.
        result = {k: v for k, v in run.result.items() if k != "checkpoint"}
        return cls.trusted(run, result=result)


class RunPage(Response):
    items: list[RunSummaryOut]
    next_cursor: str | None


class ActionsStateOut(Response):
    enabled: bool
    setting_enabled: bool
    switch_enabled: bool
    dry_run: bool
    reason: str
    executable_actions: list[str]


class SwitchIn(Request):
    enabled: bool
    reason: Reason


def _state(state: ActionsState, svc: Services) -> ActionsStateOut:
    return ActionsStateOut(
        enabled=state.enabled,
        setting_enabled=state.setting_enabled,
        switch_enabled=state.switch_enabled,
        dry_run=state.dry_run,
        reason=state.reason,
        executable_actions=svc.runs.executable_actions,
    )


@router.get("/api/v1/runs", response_model=RunPage)
async def list_runs(
    svc: Annotated[Services, Depends(services)],
    status: RunStatus | None = None,
    decision_id: Annotated[str | None, Query(max_length=40)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> HttpResponse:
    """Runs newest first; filter by status, decision or action."""
    items, next_cursor = await svc.runs.find(
        RunQuery(
            status=status,
            decision_id=decision_id,
            action=action,
            page=Page(limit=limit, after=cursor),
        )
    )
    return json_response(
        RunPage(items=[RunSummaryOut.trusted(r) for r in items], next_cursor=next_cursor)
    )


@router.get("/api/v1/runs/{run_id}", response_model=RunOut)
async def get_run(run_id: str, svc: Annotated[Services, Depends(services)]) -> HttpResponse:
    """One run with its result and its step-by-step log."""
    return json_response(RunOut.of(await svc.runs.get(run_id)))


@router.get("/api/v1/actions/switch", response_model=ActionsStateOut)
async def get_switch(svc: Annotated[Services, Depends(services)]) -> HttpResponse:
    """Whether actions run now: the DRAGON_ACTIONS_ENABLED setting and the admin toggle."""
    return json_response(_state(await svc.actions.state(), svc))


@router.put("/api/v1/actions/switch", response_model=ActionsStateOut)
async def put_switch(
    body: SwitchIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> HttpResponse:
    """Turn every action off (or back on), with a reason; audited. Runs wait, queued, while
    actions are off."""
    state = await svc.actions.turn(who, enabled=body.enabled, reason=body.reason)
    return json_response(_state(state, svc))
