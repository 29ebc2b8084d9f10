"""Explicit state machines: every allowed FROM -> TO pair is listed, anything else is refused.

Every path that changes an incident or a decision (API, webhook, worker, chat button) goes
through these functions, so there is no side door around the rules.
"""

from __future__ import annotations

from datetime import datetime

from dragon.domain.entities import Decision, Incident
from dragon.domain.enums import DecisionStatus as DS
from dragon.domain.enums import IncidentStatus as IS
from dragon.domain.errors import InvalidTransition

INCIDENT_TRANSITIONS: dict[IS, frozenset[IS]] = {
    IS.OPEN: frozenset({IS.ACKNOWLEDGED, IS.RESOLVED}),
    IS.ACKNOWLEDGED: frozenset({IS.RESOLVED}),
    IS.RESOLVED: frozenset(),
}

DECISION_TRANSITIONS: dict[DS, frozenset[DS]] = {
    DS.PROPOSED: frozenset({DS.PENDING_APPROVAL, DS.AUTO_APPROVED, DS.DENIED}),
    DS.PENDING_APPROVAL: frozenset({DS.APPROVED, DS.DENIED, DS.EXPIRED, DS.CANCELLED}),
    DS.AUTO_APPROVED: frozenset({DS.EXECUTING, DS.CANCELLED}),
    DS.APPROVED: frozenset({DS.EXECUTING, DS.CANCELLED}),
    DS.EXECUTING: frozenset({DS.SUCCEEDED, DS.FAILED}),
    DS.DENIED: frozenset(),
    DS.EXPIRED: frozenset(),
    DS.CANCELLED: frozenset(),
    DS.SUCCEEDED: frozenset(),
    DS.FAILED: frozenset(),
}

# Only these states allow the decision's action to run (guarantee 3 in ARCHITECTURE.md).
RUNNABLE = frozenset({DS.AUTO_APPROVED, DS.APPROVED})
TERMINAL = frozenset(s for s, targets in DECISION_TRANSITIONS.items() if not targets)


def transition_incident(incident: Incident, to: IS, *, actor_id: str, now: datetime) -> IS:
    """Move an incident to `to`; returns the state it left."""
    before = incident.status
    if to not in INCIDENT_TRANSITIONS[before]:
        raise InvalidTransition(
            f"incident {incident.id} is {before}; it cannot become {to}",
            code="incident_transition_invalid",
            current=before.value,
            requested=to.value,
        )
    incident.status = to
    incident.updated_at = now
    if to is IS.ACKNOWLEDGED:
        incident.acknowledged_at, incident.acknowledged_by = now, actor_id
    elif to is IS.RESOLVED:
        incident.resolved_at, incident.resolved_by = now, actor_id
    return before


def transition_decision(decision: Decision, to: DS, *, now: datetime) -> DS:
    """Move a decision to `to`; returns the state it left."""
    before = decision.status
    if to not in DECISION_TRANSITIONS[before]:
        raise InvalidTransition(
            f"decision {decision.id} is {before}; it cannot become {to}",
            code="decision_transition_invalid",
            current=before.value,
            requested=to.value,
        )
    decision.status = to
    decision.updated_at = now
    if to in TERMINAL or to in RUNNABLE:
        decision.decided_at = now
    return before
