"""Specification of the approval rules (dragon.domain.approvals.judge_verdict): who may give a
verdict, how many approvals decide, and when it is too late."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragon.domain.approvals import VerdictOutcome, is_expired, judge_verdict, may_approve
from dragon.domain.entities import Approval, Decision, Principal
from dragon.domain.enums import (
    ApprovalChannel,
    DecisionStatus,
    PrincipalKind,
    RiskLevel,
    Role,
    Verdict,
)
from dragon.domain.errors import Conflict, DragonError, Forbidden

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ROLES = list(Role)


def person(
    name: str, role: Role = Role.APPROVER, kind: PrincipalKind = PrincipalKind.USER
) -> Principal:
    return Principal(id=f"prn_{name}", name=name, role=role, kind=kind, created_at=NOW)


DEVELOPER = person("dev", Role.DEVELOPER)


def pending(
    *,
    approvals_required: int = 1,
    approver_roles: Sequence[str] = ("approver",),
    expires_at: datetime | None = NOW + timedelta(hours=4),
    proposer: Principal = DEVELOPER,
    status: DecisionStatus = DecisionStatus.PENDING_APPROVAL,
) -> Decision:
    return Decision(
        id="dec_1",
        incident_id=None,
        title="roll back checkout",
        action="rollback_deployment",
        risk_score=80,
        risk_level=RiskLevel.CRITICAL,
        proposer_id=proposer.id,
        proposer_name=proposer.name,
        proposer_kind=proposer.kind,
        status=status,
        approvals_required=approvals_required,
        approver_roles=list(approver_roles),
        expires_at=expires_at,
        created_at=NOW - timedelta(minutes=5),
        updated_at=NOW - timedelta(minutes=5),
    )


def given_verdict(principal: Principal, verdict: Verdict = Verdict.APPROVE) -> Approval:
    return Approval(
        id=f"apv_{principal.name}",
        decision_id="dec_1",
        principal_id=principal.id,
        principal_name=principal.name,
        verdict=verdict,
        justification="looked at it",
        via=ApprovalChannel.API,
        created_at=NOW - timedelta(minutes=1),
    )


def judge(
    decision: Decision,
    principal: Principal,
    verdict: Verdict = Verdict.APPROVE,
    *,
    existing: Sequence[Approval] = (),
    now: datetime = NOW,
) -> VerdictOutcome:
    return judge_verdict(
        decision=decision, existing=existing, principal=principal, verdict=verdict, now=now
    )


def refusal_code(decision: Decision, principal: Principal, **kwargs: object) -> str:
    with pytest.raises(DragonError) as refused:
        judge(decision, principal, **kwargs)  # type: ignore[arg-type]
    return refused.value.code


# Who may give a verdict


def test_single_approval_from_an_approver_approves_the_decision() -> None:
    outcome = judge(pending(), person("alice"))

    assert outcome == VerdictOutcome(DecisionStatus.APPROVED, 1)


@pytest.mark.parametrize("verdict", list(Verdict))
def test_proposer_cannot_give_a_verdict_on_their_own_decision(verdict: Verdict) -> None:
    admin = person("root", Role.ADMIN)

    with pytest.raises(Forbidden) as refused:
        judge(pending(proposer=admin), admin, verdict)

    assert refused.value.code == "separation_of_duties"


@pytest.mark.parametrize("role", ROLES)
def test_analyzer_may_never_approve_whatever_role_it_holds(role: Role) -> None:
    analyzer = person("llm", role, PrincipalKind.ANALYZER)

    with pytest.raises(Forbidden) as refused:
        judge(pending(approver_roles=["viewer"]), analyzer)

    assert refused.value.code == "separation_of_duties"
    assert "analyzer" in refused.value.message


def test_service_principal_with_the_right_role_may_approve() -> None:
    bot = person("chatops", Role.APPROVER, PrincipalKind.SERVICE)

    assert judge(pending(), bot).new_status is DecisionStatus.APPROVED


@pytest.mark.parametrize(
    ("approver_roles", "role", "allowed"),
    [
        (["approver"], Role.VIEWER, False),
        (["approver"], Role.DEVELOPER, False),
        (["approver"], Role.APPROVER, True),
        (["approver"], Role.ADMIN, True),
        (["admin"], Role.APPROVER, False),
        (["admin"], Role.ADMIN, True),
        (["approver", "admin"], Role.DEVELOPER, False),
        (["approver", "admin"], Role.APPROVER, True),
        (["admin", "developer"], Role.VIEWER, False),
        (["admin", "developer"], Role.DEVELOPER, True),
        ([], Role.DEVELOPER, False),  # no roles listed means approvers
        ([], Role.APPROVER, True),
    ],
)
def test_least_listed_role_is_the_bar_to_clear(
    approver_roles: list[str], role: Role, allowed: bool
) -> None:
    decision = pending(approver_roles=approver_roles)
    principal = person("pat", role)

    assert may_approve(principal, approver_roles) is allowed
    if allowed:
        assert judge(decision, principal).new_status is DecisionStatus.APPROVED
    else:
        with pytest.raises(Forbidden) as refused:
            judge(decision, principal)
        assert refused.value.code == "role_insufficient"
        assert refused.value.details == {"required": approver_roles, "role": role.value}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(ROLES), min_size=1, max_size=4, unique=True),
    st.sampled_from(ROLES),
)
def test_role_rule_matches_the_role_order(listed: list[Role], role: Role) -> None:
    order = [Role.VIEWER, Role.DEVELOPER, Role.APPROVER, Role.ADMIN]
    bar = min(order.index(r) for r in listed)

    assert may_approve(person("pat", role), [r.value for r in listed]) is (order.index(role) >= bar)


def test_same_principal_cannot_give_a_second_verdict() -> None:
    alice = person("alice")
    decision = pending(approvals_required=2)

    with pytest.raises(Conflict) as refused:
        judge(decision, alice, existing=[given_verdict(alice)])

    assert refused.value.code == "approval_duplicate"


def test_a_second_verdict_is_refused_even_when_it_changes_sides() -> None:
    alice = person("alice")

    code = refusal_code(
        pending(approvals_required=2),
        alice,
        verdict=Verdict.REJECT,
        existing=[given_verdict(alice, Verdict.APPROVE)],
    )

    assert code == "approval_duplicate"


# When it is too late


@pytest.mark.parametrize(
    "status", [s for s in DecisionStatus if s is not DecisionStatus.PENDING_APPROVAL]
)
def test_only_pending_decisions_take_verdicts(status: DecisionStatus) -> None:
    with pytest.raises(Conflict) as refused:
        judge(pending(status=status), person("alice"))

    assert refused.value.code == "decision_not_pending"
    assert refused.value.details == {"current": status.value}


def test_verdict_at_the_expiry_instant_is_refused() -> None:
    decision = pending(expires_at=NOW)

    with pytest.raises(Conflict) as refused:
        judge(decision, person("alice"), now=NOW)

    assert refused.value.code == "decision_expired"
    assert "2026-11-22T09:00:00Z" in refused.value.message


def test_verdict_one_microsecond_before_expiry_counts() -> None:
    decision = pending(expires_at=NOW + timedelta(microseconds=1))

    assert judge(decision, person("alice"), now=NOW).new_status is DecisionStatus.APPROVED
    assert is_expired(decision, NOW) is False
    assert is_expired(decision, NOW + timedelta(microseconds=1)) is True


def test_decision_without_deadline_never_expires() -> None:
    decision = pending(expires_at=None)

    assert is_expired(decision, NOW + timedelta(days=3650)) is False
    assert judge(decision, person("alice"), now=NOW + timedelta(days=3650)).approvals_count == 1


def test_expiry_is_checked_before_who_is_asking() -> None:
    """An expired decision says so to everyone, even to someone who could never approve it."""
    code = refusal_code(pending(expires_at=NOW - timedelta(seconds=1)), person("v", Role.VIEWER))

    assert code == "decision_expired"


# Counting to the quorum


@pytest.mark.parametrize("required", [1, 2, 3, 5, 10])
def test_decision_is_approved_by_exactly_n_distinct_approvals(required: int) -> None:
    decision = pending(approvals_required=required)
    approvers = [person(f"approver{i}") for i in range(required)]
    existing: list[Approval] = []
    outcomes = []
    for approver in approvers:
        outcomes.append(judge(decision, approver, existing=existing))
        existing.append(given_verdict(approver))

    assert [o.approvals_count for o in outcomes] == list(range(1, required + 1))
    assert [o.new_status for o in outcomes] == [DecisionStatus.PENDING_APPROVAL] * (
        required - 1
    ) + [DecisionStatus.APPROVED]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10), st.integers(0, 9))
def test_approval_outcome_depends_only_on_the_distinct_approvals_so_far(
    required: int, already: int
) -> None:
    already = min(already, required - 1)
    existing = [given_verdict(person(f"a{i}")) for i in range(already)]

    outcome = judge(pending(approvals_required=required), person("last"), existing=existing)

    assert outcome.approvals_count == already + 1
    expected = (
        DecisionStatus.APPROVED if already + 1 == required else DecisionStatus.PENDING_APPROVAL
    )
    assert outcome.new_status is expected


@pytest.mark.parametrize("approvals_before", [0, 1, 2])
def test_any_rejection_denies_the_decision(approvals_before: int) -> None:
    existing = [given_verdict(person(f"a{i}")) for i in range(approvals_before)]

    outcome = judge(pending(approvals_required=3), person("bob"), Verdict.REJECT, existing=existing)

    assert outcome == VerdictOutcome(DecisionStatus.DENIED, approvals_before)


def test_admin_counts_toward_a_quorum_of_approvers() -> None:
    decision = pending(approvals_required=2, approver_roles=["approver", "admin"])
    alice = person("alice")

    outcome = judge(decision, person("root", Role.ADMIN), existing=[given_verdict(alice)])

    assert outcome == VerdictOutcome(DecisionStatus.APPROVED, 2)
