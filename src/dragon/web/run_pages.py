"""Console pages for runs: the list (status filter, pages) and one run's step-by-step log,
attempts and result. Both read through the same use case as `GET /api/v1/runs`, and each has a
fragment the page swaps in when the live feed reports a change (or, while a run is under way,
every few seconds, because a step's progress is not an audited change)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from dragon.api.access import GuardedRoute, principal_of, services
from dragon.api.routes.runs import RunOut
from dragon.domain.entities import Principal, Run
from dragon.domain.enums import RunStatus
from dragon.domain.ports import Page, RunQuery
from dragon.services.container import Services
from dragon.web.pages import enum_or_none
from dragon.web.rendering import render
from dragon.web.run_views import is_active, result_links, status_text

router = APIRouter(route_class=GuardedRoute, include_in_schema=False)
Who = Annotated[Principal, Depends(principal_of)]
Svc = Annotated[Services, Depends(services)]
PAGE_SIZE = 25
POLL_SECONDS = 2


@dataclass(frozen=True)
class RunFilters:
    status: str | None = None
    action: str | None = None
    decision_id: str | None = None
    cursor: str | None = None


async def _runs(svc: Services, filters: RunFilters) -> dict[str, Any]:
    items, next_cursor = await svc.runs.find(
        RunQuery(
            status=enum_or_none(RunStatus, filters.status, "status"),
            action=filters.action or None,
            decision_id=filters.decision_id or None,
            page=Page(limit=PAGE_SIZE, after=filters.cursor or None),
        )
    )
    return {
        "runs": items,
        "next_cursor": next_cursor,
        "filters": {
            "status": filters.status or "",
            "action": filters.action or "",
            "decision_id": filters.decision_id or "",
        },
        "statuses": list(RunStatus),
        "first_page": filters.cursor is None,
        "status_text": functools.partial(status_text, held=await _held(svc)),
    }


async def _held(svc: Services) -> str | None:
    """Why actions are off, when they are (queued runs wait for that), else None."""
    state = await svc.actions.state()
    return None if state.enabled else state.reason or "no reason given"


Status = Annotated[str | None, Query(max_length=20)]
ActionFilter = Annotated[str | None, Query(max_length=64)]
Cursor = Annotated[str | None, Query(max_length=64)]
DecisionFilter = Annotated[str | None, Query(max_length=40)]


@router.get("/runs")
async def runs_page(
    request: Request,
    who: Who,
    svc: Svc,
    status: Status = None,
    action: ActionFilter = None,
    decision_id: DecisionFilter = None,
    cursor: Cursor = None,
) -> Response:
    context = await _runs(svc, RunFilters(status, action, decision_id, cursor))
    return render(request, "runs.html", principal=who, query=request.url.query, **context)


@router.get("/runs/panel")
async def runs_panel(
    request: Request,
    who: Who,
    svc: Svc,
    status: Status = None,
    action: ActionFilter = None,
    decision_id: DecisionFilter = None,
    cursor: Cursor = None,
) -> Response:
    """The runs table as an HTML fragment, for the page's live refresh."""
    context = await _runs(svc, RunFilters(status, action, decision_id, cursor))
    return render(request, "runs_table.html", principal=who, **context)


async def _run_context(run: Run, svc: Services) -> dict[str, Any]:
    shown = RunOut.of(run)  # the API's view: the worker's checkpoint is not part of the result
    return {
        "run": run,
        "result": shown.result,
        "links": result_links(shown.result),
        "status_text": status_text(run, held=await _held(svc)),
        "active": is_active(run),
        "poll_seconds": POLL_SECONDS,
    }


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str, who: Who, svc: Svc) -> Response:
    run = await svc.runs.get(run_id)
    decision = (await svc.decisions.get(run.decision_id)).decision
    context = await _run_context(run, svc)
    return render(request, "run.html", principal=who, decision=decision, **context)


@router.get("/runs/{run_id}/panel")
async def run_panel(request: Request, run_id: str, who: Who, svc: Svc) -> Response:
    """One run's state, log and result as an HTML fragment, for the page's live refresh."""
    run = await svc.runs.get(run_id)
    return render(request, "run_panel.html", principal=who, **(await _run_context(run, svc)))
