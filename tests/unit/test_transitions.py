"""Specification of the incident and decision state machines (dragon.domain.transitions).

A transition happens exactly when its FROM -> TO pair is in the table; anything else raises
InvalidTransition and leaves the entity exactly as it was.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragon.domain.entities import Decision, Incident
from dragon.domain.enums import (
    DecisionStatus,
    IncidentStatus,
    PrincipalKind,
    RiskLevel,
    Severity,
)
from dragon.domain.errors import Conflict, InvalidTransition
from dragon.domain.transitions import (
    DECISION_TRANSITIONS,
    INCIDENT_TRANSITIONS,
    RUNNABLE,
    TERMINAL,
    transition_decision,
    transition_incident,
)

CREATED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
EXAMPLES = settings(max_examples=150, deadline=None)


def new_incident() -> Incident:
    return Incident(
        id="inc_1",
        title="checkout deploy failed",
        severity=Severity.SEV2,
        source="api",
        created_by="prn_alice",
        created_at=CREATED,
        updated_at=CREATED,
        first_seen_at=CREATED,
        last_seen_at=CREATED,
    )


def new_decision() -> Decision:
    return Decision(
        id="dec_1",
        incident_id="inc_1",
        title="rerun the failed job",
        action="rerun_job",
        risk_score=10,
        risk_level=RiskLevel.LOW,
        proposer_id="analyzer",
        proposer_name="analyzer",
        proposer_kind=PrincipalKind.ANALYZER,
        created_at=CREATED,
        updated_at=CREATED,
    )


def snapshot(entity: Incident | Decision) -> dict[str, Any]:
    return dataclasses.asdict(entity)


def moments(count: int) -> list[datetime]:
    return [CREATED + timedelta(minutes=i + 1) for i in range(count)]


# The tables themselves


def test_incident_table_allows_exactly_the_documented_moves() -> None:
    allowed = {(a, b) for a, targets in INCIDENT_TRANSITIONS.items() for b in targets}

    assert allowed == {
        (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED),
        (IncidentStatus.OPEN, IncidentStatus.RESOLVED),
        (IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED),
    }


def test_decision_terminal_states_are_the_ones_with_no_way_out() -> None:
    assert {
        DecisionStatus.DENIED,
        DecisionStatus.EXPIRED,
        DecisionStatus.CANCELLED,
        DecisionStatus.SUCCEEDED,
        DecisionStatus.FAILED,
    } == TERMINAL


def test_only_auto_approved_and_approved_decisions_are_runnable() -> None:
    assert {DecisionStatus.AUTO_APPROVED, DecisionStatus.APPROVED} == RUNNABLE
    leading_to_executing = {
        state
        for state, targets in DECISION_TRANSITIONS.items()
        if DecisionStatus.EXECUTING in targets
    }
    assert leading_to_executing == RUNNABLE


def test_every_state_has_a_row_in_its_table() -> None:
    assert set(INCIDENT_TRANSITIONS) == set(IncidentStatus)
    assert set(DECISION_TRANSITIONS) == set(DecisionStatus)


# Incidents


@EXAMPLES
@given(st.lists(st.sampled_from(list(IncidentStatus)), max_size=8))
def test_incident_moves_iff_the_table_allows_it_and_refusals_change_nothing(
    targets: list[IncidentStatus],
) -> None:
    incident = new_incident()
    for step, (target, now) in enumerate(zip(targets, moments(len(targets)), strict=True)):
        before = incident.status
        actor = f"prn_{step}"
        if target in INCIDENT_TRANSITIONS[before]:
            left = transition_incident(incident, target, actor_id=actor, now=now)
            assert left is before
            assert incident.status is target
            assert incident.updated_at == now
        else:
            unchanged = snapshot(incident)
            with pytest.raises(InvalidTransition) as refused:
                transition_incident(incident, target, actor_id=actor, now=now)
            assert refused.value.code == "incident_transition_invalid"
            assert refused.value.details == {"current": before.value, "requested": target.value}
            assert snapshot(incident) == unchanged


@EXAMPLES
@given(st.lists(st.sampled_from(list(IncidentStatus)), max_size=8))
def test_resolved_incident_never_changes_again(targets: list[IncidentStatus]) -> None:
    incident = new_incident()
    transition_incident(incident, IncidentStatus.RESOLVED, actor_id="prn_bob", now=CREATED)
    resolved = snapshot(incident)

    for target in targets:
        with pytest.raises(InvalidTransition):
            transition_incident(incident, target, actor_id="prn_eve", now=CREATED + timedelta(1))

    assert snapshot(incident) == resolved


def test_acknowledging_records_when_and_by_whom() -> None:
    incident = new_incident()
    at = CREATED + timedelta(minutes=3)

    left = transition_incident(incident, IncidentStatus.ACKNOWLEDGED, actor_id="prn_bob", now=at)

    assert left is IncidentStatus.OPEN
    assert incident.status is IncidentStatus.ACKNOWLEDGED
    assert (incident.acknowledged_at, incident.acknowledged_by) == (at, "prn_bob")
    assert (incident.resolved_at, incident.resolved_by) == (None, None)
    assert incident.updated_at == at


def test_resolving_after_acknowledging_keeps_who_acknowledged() -> None:
    incident = new_incident()
    acked, resolved = CREATED + timedelta(minutes=3), CREATED + timedelta(minutes=9)
    transition_incident(incident, IncidentStatus.ACKNOWLEDGED, actor_id="prn_bob", now=acked)

    left = transition_incident(
        incident, IncidentStatus.RESOLVED, actor_id="prn_carol", now=resolved
    )

    assert left is IncidentStatus.ACKNOWLEDGED
    assert (incident.acknowledged_at, incident.acknowledged_by) == (acked, "prn_bob")
    assert (incident.resolved_at, incident.resolved_by) == (resolved, "prn_carol")


def test_resolving_an_open_incident_directly_leaves_acknowledgement_empty() -> None:
    incident = new_incident()

    transition_incident(incident, IncidentStatus.RESOLVED, actor_id="prn_bob", now=CREATED)

    assert (incident.acknowledged_at, incident.acknowledged_by) == (None, None)
    assert (incident.resolved_at, incident.resolved_by) == (CREATED, "prn_bob")


def test_acknowledging_twice_is_refused_with_current_and_requested_states() -> None:
    incident = new_incident()
    transition_incident(incident, IncidentStatus.ACKNOWLEDGED, actor_id="prn_bob", now=CREATED)

    with pytest.raises(Conflict) as refused:
        transition_incident(incident, IncidentStatus.ACKNOWLEDGED, actor_id="prn_eve", now=CREATED)

    assert isinstance(refused.value, InvalidTransition)
    assert refused.value.code == "incident_transition_invalid"
    assert refused.value.details == {"current": "acknowledged", "requested": "acknowledged"}
    assert incident.acknowledged_by == "prn_bob"


# Decisions


@EXAMPLES
@given(st.lists(st.sampled_from(list(DecisionStatus)), max_size=12))
def test_decision_moves_iff_the_table_allows_it_and_refusals_change_nothing(
    targets: list[DecisionStatus],
) -> None:
    decision = new_decision()
    for target, now in zip(targets, moments(len(targets)), strict=True):
        before = decision.status
        if target in DECISION_TRANSITIONS[before]:
            decided_before = decision.decided_at
            left = transition_decision(decision, target, now=now)
            assert left is before
            assert decision.status is target
            assert decision.updated_at == now
            if decided_before is None and (target in TERMINAL or target in RUNNABLE):
                assert decision.decided_at == now
            else:
                assert decision.decided_at == decided_before
        else:
            unchanged = snapshot(decision)
            with pytest.raises(InvalidTransition) as refused:
                transition_decision(decision, target, now=now)
            assert refused.value.code == "decision_transition_invalid"
            assert refused.value.details == {"current": before.value, "requested": target.value}
            assert snapshot(decision) == unchanged


@EXAMPLES
@given(
    st.sampled_from(sorted(TERMINAL)),
    st.lists(st.sampled_from(list(DecisionStatus)), min_size=1, max_size=8),
)
def test_terminal_decision_never_changes_again(
    terminal: DecisionStatus, targets: list[DecisionStatus]
) -> None:
    decision = new_decision()
    decision.status = terminal
    frozen = snapshot(decision)

    for target in targets:
        with pytest.raises(InvalidTransition):
            transition_decision(decision, target, now=CREATED + timedelta(hours=1))

    assert snapshot(decision) == frozen


@EXAMPLES
@given(st.lists(st.sampled_from(list(DecisionStatus)), max_size=12))
def test_decision_reaches_executing_only_from_an_approved_state(
    targets: list[DecisionStatus],
) -> None:
    decision = new_decision()
    path = [decision.status]
    for target in targets:
        try:
            transition_decision(decision, target, now=CREATED)
        except InvalidTransition:
            continue
        path.append(decision.status)

    for previous, current in itertools.pairwise(path):
        if current is DecisionStatus.EXECUTING:
            assert previous in {DecisionStatus.AUTO_APPROVED, DecisionStatus.APPROVED}


@pytest.mark.parametrize(
    "status",
    [
        DecisionStatus.PROPOSED,
        DecisionStatus.PENDING_APPROVAL,
        DecisionStatus.DENIED,
        DecisionStatus.EXPIRED,
        DecisionStatus.CANCELLED,
    ],
)
def test_unapproved_decision_cannot_start_executing(status: DecisionStatus) -> None:
    decision = new_decision()
    decision.status = status

    with pytest.raises(InvalidTransition) as refused:
        transition_decision(decision, DecisionStatus.EXECUTING, now=CREATED)

    assert refused.value.code == "decision_transition_invalid"
    assert decision.status is status


def test_pending_decision_is_not_marked_decided_until_approved() -> None:
    decision = new_decision()
    asked, approved = CREATED + timedelta(minutes=1), CREATED + timedelta(minutes=5)

    transition_decision(decision, DecisionStatus.PENDING_APPROVAL, now=asked)
    assert decision.decided_at is None

    left = transition_decision(decision, DecisionStatus.APPROVED, now=approved)
    assert left is DecisionStatus.PENDING_APPROVAL
    assert decision.decided_at == approved


@pytest.mark.parametrize("outcome", [DecisionStatus.SUCCEEDED, DecisionStatus.FAILED])
def test_finishing_keeps_the_time_the_decision_was_approved(outcome: DecisionStatus) -> None:
    decision = new_decision()
    asked, approved = CREATED + timedelta(minutes=1), CREATED + timedelta(minutes=5)
    started, finished = CREATED + timedelta(minutes=6), CREATED + timedelta(minutes=9)
    transition_decision(decision, DecisionStatus.PENDING_APPROVAL, now=asked)
    transition_decision(decision, DecisionStatus.APPROVED, now=approved)
    transition_decision(decision, DecisionStatus.EXECUTING, now=started)

    transition_decision(decision, outcome, now=finished)

    assert decision.decided_at == approved
    assert decision.updated_at == finished


def test_cancelling_an_approved_decision_keeps_the_time_it_was_approved() -> None:
    decision = new_decision()
    approved, cancelled = CREATED + timedelta(minutes=1), CREATED + timedelta(minutes=2)
    transition_decision(decision, DecisionStatus.AUTO_APPROVED, now=approved)

    transition_decision(decision, DecisionStatus.CANCELLED, now=cancelled)

    assert decision.decided_at == approved


@pytest.mark.parametrize(
    "outcome", [DecisionStatus.DENIED, DecisionStatus.EXPIRED, DecisionStatus.CANCELLED]
)
def test_refusing_a_pending_decision_marks_it_decided(outcome: DecisionStatus) -> None:
    decision = new_decision()
    transition_decision(decision, DecisionStatus.PENDING_APPROVAL, now=CREATED)
    at = CREATED + timedelta(hours=2)

    transition_decision(decision, outcome, now=at)

    assert decision.decided_at == at


def test_executing_keeps_the_time_the_decision_was_approved() -> None:
    decision = new_decision()
    approved, started = CREATED + timedelta(minutes=1), CREATED + timedelta(minutes=2)
    transition_decision(decision, DecisionStatus.AUTO_APPROVED, now=approved)

    transition_decision(decision, DecisionStatus.EXECUTING, now=started)

    assert decision.decided_at == approved
    assert decision.updated_at == started
