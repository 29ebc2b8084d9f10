"""Dragon's own normalized event for any tool, and the original system's CI and alert routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from pydantic import Field
from starlette.responses import Response

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.routes.webhooks import receipt_response
from dragon.api.schemas import (
    Branch,
    EventName,
    LabelValue,
    LogExcerpt,
    Name,
    OptionalTitle,
    Repo,
    Request,
    Sha,
    Source,
    Title,
    Url,
)
from dragon.domain.enums import Severity
from dragon.domain.signals import SignalKind
from dragon.services.container import Services
from dragon.services.context import Caller

router = APIRouter(tags=["events"], route_class=GuardedRoute)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[A-Za-z0-9._:\-]{1,200}$",
        description="repeat a request with the same key and it is stored once",
    ),
]
Labels = dict[Name, LabelValue]


class EventIn(Request):
    source: Source = "api"
    kind: SignalKind
    title: Title
    repo: Repo | None = None
    branch: Branch | None = None
    commit: Sha | None = None
    pipeline: EventName | None = None
    job: EventName | None = None
    url: Url | None = None
    environment: Name | None = None
    severity: Severity = Severity.SEV3
    labels: Labels = Field(default_factory=dict, max_length=50)
    log_excerpt: LogExcerpt = ""
    occurred_at: datetime | None = None


async def _submit(svc: Services, who: Caller, event: dict[str, Any], key: str | None) -> Response:
    receipt = await svc.ingest.submit(who, event=event, key=key)
    return receipt_response(receipt)


@router.post("/api/v1/events", status_code=202)
async def submit_event(
    body: EventIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Report a CI result or an alert from any tool. Stored durably before the 202; with an
    `Idempotency-Key`, a repeat answers 200 with the original delivery and changes nothing."""
    return await _submit(svc, who, body.model_dump(mode="json"), idempotency_key)


class LegacyCiEvent(Request):
    """The original `POST /api/ci/event`."""

    repo: Repo
    status: Literal["failure", "failed", "error", "timed_out", "success", "passed", "fixed"]
    branch: Branch | None = None
    commit: Sha | None = None
    workflow: EventName | None = None
    job: EventName | None = None
    provider: Source = "api"
    url: Url | None = None
    log: LogExcerpt = ""
    title: Title | None = None


class LegacyAlert(Request):
    """The original `POST /api/observability/alert`."""

    alertname: Name
    status: Literal["firing", "resolved"] = "firing"
    severity: Literal["critical", "high", "error", "warning", "info", "low"] = "warning"
    service: Name | None = None
    environment: Name | None = None
    summary: OptionalTitle = ""  # becomes the title: a title's limits
    labels: Labels = Field(default_factory=dict, max_length=50)
    url: Url | None = None
    commit: Sha | None = None


_ALERT_SEVERITY = {
    "critical": Severity.SEV1,
    "high": Severity.SEV2,
    "error": Severity.SEV2,
    "warning": Severity.SEV3,
    "info": Severity.SEV4,
    "low": Severity.SEV4,
}


@router.post("/api/ci/event", status_code=202, tags=["compatibility"])
async def legacy_ci_event(
    body: LegacyCiEvent,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Alias of `POST /api/v1/events` for CI results in the original system's fields."""
    failed = body.status in ("failure", "failed", "error", "timed_out")
    pipeline = body.workflow or "ci"
    event = EventIn(
        source=body.provider,
        kind=SignalKind.CI_FAILURE if failed else SignalKind.CI_RECOVERY,
        title=body.title or f"CI {'failed' if failed else 'passed'}: {pipeline} on {body.repo}",
        repo=body.repo,
        branch=body.branch,
        commit=body.commit,
        pipeline=pipeline,
        job=body.job,
        url=body.url,
        log_excerpt=body.log,
    )
    return await _submit(svc, who, event.model_dump(mode="json"), idempotency_key)


@router.post("/api/observability/alert", status_code=202, tags=["compatibility"])
async def legacy_alert(
    body: LegacyAlert,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Alias of `POST /api/v1/events` for alerts in the original system's fields."""
    labels = {"alertname": body.alertname, **body.labels}
    if body.service:
        labels["service"] = body.service
    event = EventIn(
        source="api",
        kind=SignalKind.ALERT_FIRING if body.status == "firing" else SignalKind.ALERT_RESOLVED,
        title=body.summary or body.alertname,
        environment=body.environment,
        severity=_ALERT_SEVERITY[body.severity],
        labels=labels,
        url=body.url,
        commit=body.commit,
    )
    return await _submit(svc, who, event.model_dump(mode="json"), idempotency_key)
