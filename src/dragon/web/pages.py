"""Console pages for reading: the dashboard (with its live panel) and incidents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from dragon.api.access import GuardedRoute, principal_of, services
from dragon.domain.dashboard import DashboardFigures
from dragon.domain.entities import Principal
from dragon.domain.enums import IncidentStatus, Role, Severity
from dragon.domain.errors import ValidationFailed
from dragon.domain.ports import AuditQuery, DecisionQuery, IncidentQuery, Page
from dragon.services.container import Services
from dragon.web.charts import incidents_chart
from dragon.web.rendering import render

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


def _enum_or_none(kind: type[Any], value: str | None, field: str) -> Any:
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
            status=_enum_or_none(IncidentStatus, status, "status"),
            severity=_enum_or_none(Severity, severity, "severity"),
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
    url: str | None = None


@router.get("/incidents/{incident_id}")
async def incident_page(request: Request, incident_id: str, who: Who, svc: Svc) -> Response:
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
    if who.role.includes(Role.ADMIN):
        targets = [incident_id, *(d.id for d in decisions)]
        for target in targets:
            for event in await svc.audit.find(AuditQuery(target_id=target, limit=100)):
                timeline.append(
                    TimelineEntry(
                        event.occurred_at,
                        "audit",
                        f"Audit #{event.seq}: {event.action} by {event.actor_name}",
                    )
                )
    timeline.sort(key=lambda e: e.at, reverse=True)
    return render(
        request,
        "incident.html",
        principal=who,
        incident=incident,
        decisions=views,
        links=links,
        timeline=timeline,
    )
