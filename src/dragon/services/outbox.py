"""The one way to enqueue a notification: `notify(uow, ...)` inside the use case's transaction,
beside its audit `record`, so a notification exists exactly when its state change committed.
Delivery happens later, in the notification worker (services.notifications)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dragon.domain.entities import Decision, Incident, NotificationEvent
from dragon.domain.ids import new_id
from dragon.domain.notifications import subject_of
from dragon.domain.ports import UnitOfWork


async def notify(
    uow: UnitOfWork,
    *,
    event: str,
    now: datetime,
    incident: Incident | None = None,
    decision: Decision | None = None,
    details: dict[str, Any] | None = None,
    escalate: bool = False,
) -> str:
    """Queue `event` (`incident.opened`, `decision.approved`, `run.failed`, ...) about an
    incident and/or decision. A decision's incident is looked up when not given, so routing
    by severity, source, repository and labels works for decision events too. `escalate`
    sends it to the escalation route instead (a run that did not help, say). Returns the
    event's id."""
    if incident is None and decision is not None and decision.incident_id:
        incident = await uow.incidents.get(decision.incident_id)
    event_id = new_id("nev", now)
    await uow.notifications.add_event(
        NotificationEvent(
            id=event_id,
            event=event,
            incident_id=incident.id if incident else None,
            decision_id=decision.id if decision else None,
            subject=subject_of(incident, decision, details, escalate=escalate),
            created_at=now,
        )
    )
    return event_id
