"""Explicit state machines: every allowed FROM -> TO pair is listed, anything else is refused.

Every path that changes an incident or a decision (API, webhook, worker, chat button) goes
through these functions, so there is no side door around the rules.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from dragon.domain.entities import Decision, Incident
from dragon.domain.enums import DecisionStatus, IncidentStatus
from dragon.domain.errors import InvalidTransition

INCIDENT_TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset({IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED}),
    IncidentStatus.ACKNOWLEDGED: frozenset({IncidentStatus.RESOLVED}),
    IncidentStatus.RESOLVED: frozenset(),
}

DECISION_TRANSITIONS: dict[DecisionStatus, frozenset[DecisionStatus]] = {
    DecisionStatus.PROPOSED: frozenset(
        {DecisionStatus.PENDING_APPROVAL, DecisionStatus.AUTO_APPROVED, DecisionStatus.DENIED}
    ),
    DecisionStatus.PENDING_APPROVAL: frozenset(
        {
            DecisionStatus.APPROVED,
            DecisionStatus.DENIED,
            DecisionStatus.EXPIRED,
            DecisionStatus.CANCELLED,
        }
    ),
    DecisionStatus.AUTO_APPROVED: frozenset({DecisionStatus.EXECUTING, DecisionStatus.CANCELLED}),
    DecisionStatus.APPROVED: frozenset({DecisionStatus.EXECUTING, DecisionStatus.CANCELLED}),
    DecisionStatus.EXECUTING: frozenset({DecisionStatus.SUCCEEDED, DecisionStatus.FAILED}),
    DecisionStatus.DENIED: frozenset(),
    DecisionStatus.EXPIRED: frozenset(),
    DecisionStatus.CANCELLED: frozenset(),
    DecisionStatus.SUCCEEDED: frozenset(),
    DecisionStatus.FAILED: frozenset(),
}

# Only these states allow the decision's action to run (guarantee 3 in ARCHITECTURE.md).
RUNNABLE = frozenset({DecisionStatus.AUTO_APPROVED, DecisionStatus.APPROVED})
TERMINAL = frozenset(s for s, targets in DECISION_TRANSITIONS.items() if not targets)


def _refuse_unless_allowed(
    *, kind: str, entity_id: str, before: StrEnum, to: StrEnum, allowed: frozenset[Any]
) -> None:
    if to not in allowed:
        raise InvalidTransition(
            f"{kind} {entity_id} is {before}; it cannot become {to}",
            code=f"{kind}_transition_invalid",
            current=before.value,
            requested=to.value,
        )


def transition_incident(
    incident: Incident, to: IncidentStatus, *, actor_id: str, now: datetime
) -> IncidentStatus:
    """Move an incident to `to`; returns the state it left."""
    before = incident.status
    _refuse_unless_allowed(
        kind="incident",
        entity_id=incident.id,
        before=before,
        to=to,
        allowed=INCIDENT_TRANSITIONS[before],
    )
    incident.status = to
    incident.updated_at = now
    if to is IncidentStatus.ACKNOWLEDGED:
        incident.acknowledged_at, incident.acknowledged_by = now, actor_id
    elif to is IncidentStatus.RESOLVED:
        incident.resolved_at, incident.resolved_by = now, actor_id
    return before


def transition_decision(decision: Decision, to: DecisionStatus, *, now: datetime) -> DecisionStatus:
    """Move a decision to `to`; returns the state it left."""
    before = decision.status
    _refuse_unless_allowed(
        kind="decision",
        entity_id=decision.id,
        before=before,
        to=to,
        allowed=DECISION_TRANSITIONS[before],
    )
    decision.status = to
    decision.updated_at = now
    # Decided means approved, auto-approved, denied, expired or cancelled unapproved; running
    # and finishing afterwards must not move the moment the decision was taken.
    if decision.decided_at is None and (to in TERMINAL or to in RUNNABLE):
        decision.decided_at = now
    return before
