"""Console pages for reading: the dashboard (with its live panel) and incidents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from dragon.api.access import GuardedRoute, caller, principal_of, services
from dragon.api.problems import STATUS_BY_KIND
from dragon.domain.dashboard import DashboardFigures
from dragon.domain.entities import Principal, Run
from dragon.domain.enums import IncidentStatus, Role, Severity
from dragon.domain.errors import DragonError, ValidationFailed
from dragon.domain.ports import AuditQuery, DecisionQuery, IncidentQuery, Page, RunQuery
from dragon.services.container import Services
from dragon.services.context import Caller
from dragon.web.charts import incidents_chart
from dragon.web.rendering import render
from dragon.web.run_views import result_links, status_text

router = APIRouter(route_class=GuardedRoute, include_in_schema=False)
Who = Annotated[Principal, Depends(principal_of)]
Svc = Annotated[Services, Depends(services)]
PAGE_SIZE = 25


def _panel_context(figures: DashboardFigures) -> dict[str, Any]:
    return {"figures": figures, "chart": incidents_chart(figures.incidents_per_day)}


@router.get("/")
async def dashboard_page(request: Request, who: Who, svc: Svc) -> Response:
    figures = await svc.dashboard.figures()
    return render(request, "dashboard.html", principal=who, **_panel_context(figures))


@router.get("/dashboard/panel")
async def dashboard_panel(request: Request, who: Who, svc: Svc) -> Response:
    """The figures as an HTML fragment; the page swaps it in when the live feed says so."""
    figures = await svc.dashboard.figures()
    return render(request, "dashboard_panel.html", principal=who, **_panel_context(figures))


def enum_or_none(kind: type[Any], value: str | None, field: str) -> Any:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ValidationFailed(
            f"{field} {value!r} is not one of the choices", code="filter_invalid"
        ) from None


@router.get("/incidents")
async def incidents_page(
    request: Request,
    who: Who,
    svc: Svc,
    status: Annotated[str | None, Query(max_length=20)] = None,
    severity: Annotated[str | None, Query(max_length=8)] = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    items, next_cursor = await svc.incidents.find(
        IncidentQuery(
            status=enum_or_none(IncidentStatus, status, "status"),
            severity=enum_or_none(Severity, severity, "severity"),
            source=source or None,
            text=q or None,
            page=Page(limit=PAGE_SIZE, after=cursor or None),
        )
    )
    filters = {
        "status": status or "",
        "severity": severity or "",
        "source": source or "",
        "q": q or "",
    }
    return render(
        request,
        "incidents.html",
        principal=who,
        incidents=items,
        next_cursor=next_cursor,
        filters=filters,
        statuses=list(IncidentStatus),
        severities=list(Severity),
        sources=["github", "gitlab", "jenkins", "alertmanager", "api"],
        first_page=cursor is None,
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    title: str
    detail: str = ""
    url: str | None = None  # out to where it happened: the CI run, the alert, the pull request
    href: str | None = None  # to the console's own page for it


@router.get("/incidents/{incident_id}")
async def incident_page(request: Request, incident_id: str, who: Who, svc: Svc) -> Response:
    return await _incident_page(request, incident_id, who, svc)


@router.post("/incidents/{incident_id}/{move}")
async def move_incident(
    request: Request,
    incident_id: str,
    move: str,
    who: Annotated[Caller, Depends(caller)],
    svc: Svc,
) -> Response:
    """Acknowledge or resolve, through the same use case as the API."""
    try:
        if move == "acknowledge":
            await svc.incidents.acknowledge(who, incident_id)
        elif move == "resolve":
            await svc.incidents.resolve(who, incident_id)
        else:
            raise ValidationFailed(f"no such step {move!r}", code="filter_invalid")
    except DragonError as exc:
        return await _incident_page(
            request,
            incident_id,
            who.principal,
            svc,
            status_code=STATUS_BY_KIND[exc.kind],
            error=exc.message,
        )
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303)


def run_entries(run: Run) -> list[TimelineEntry]:
    """A run's moments: queued, started, finished (with where its result can be seen)."""
    href = f"/runs/{run.id}"
    entries = [TimelineEntry(run.created_at, "run", f"Run of {run.action} queued", href=href)]
    if run.started_at:
        entries.append(
            TimelineEntry(
                run.started_at,
                "run",
                f"Run of {run.action} started",
                f"attempt {run.attempts} of {run.max_attempts}",
                href=href,
            )
        )
    if run.finished_at:
        links = result_links(run.result)
        entries.append(
            TimelineEntry(
                run.finished_at,
                "run",
                f"Run of {run.action} {run.status}",
                status_text(run) + (f": {run.error}" if run.error else ""),
                url=links[0].url if links else None,
                href=href,
            )
        )
    return entries


async def _incident_page(
    request: Request,
    incident_id: str,
    who: Principal,
    svc: Services,
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    incident = await svc.incidents.get(incident_id)
    signals = await svc.incidents.signals(incident_id, limit=100)
    links = await svc.incidents.links(incident_id)
    decisions, _ = await svc.decisions.find(
        DecisionQuery(incident_id=incident_id, page=Page(limit=50))
    )
    timeline: list[TimelineEntry] = [
        TimelineEntry(
            s.occurred_at, "signal", f"{s.kind} from {s.source}: {s.title}", s.job or "", s.url
        )
        for s in signals
    ]
    views = [await svc.decisions.get(d.id) for d in decisions]
    for view in views:
        d = view.decision
        timeline.append(
            TimelineEntry(
                d.created_at,
                "decision",
                f"Decision proposed: {d.title} ({d.action})",
                f"risk {d.risk_level} ({d.risk_score}); {d.status}; policy rule {d.policy_rule}",
            )
        )
        timeline.extend(
            TimelineEntry(
                a.created_at,
                "approval",
                f"{a.principal_name} {a.verdict}d via {a.via}",
                a.justification,
            )
            for a in view.approvals
        )
    runs = [
        run
        for d in decisions
        for run in (await svc.runs.find(RunQuery(decision_id=d.id, page=Page(limit=5))))[0]
    ]
    timeline.extend(entry for run in runs for entry in run_entries(run))
    if who.role.includes(Role.ADMIN):
        targets = [incident_id, *(d.id for d in decisions), *(r.id for r in runs)]
        for target in targets:
            for event in await svc.audit.find(AuditQuery(target_id=target, limit=100)):
                timeline.append(
                    TimelineEntry(
                        event.occurred_at,
                        "audit",
                        f"Audit #{event.seq}: {event.action} by {event.actor_name}",
                    )
                )
    timeline.sort(key=lambda e: e.at)
    return render(
        request,
        "incident.html",
        principal=who,
        status_code=status_code,
        error=error,
        can_move=who.role.includes(Role.DEVELOPER),
        incident=incident,
        decisions=views,
        runs_of={d.id: [r for r in runs if r.decision_id == d.id] for d in decisions},
        links=links,
        timeline=timeline,
    )
