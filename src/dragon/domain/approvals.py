"""The approval rules: who may approve, how many must, and when it is too late.

Pure functions over a decision and the verdicts already given; the service applies the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dragon.domain.entities import Approval, Decision, Principal
from dragon.domain.enums import DecisionStatus, PrincipalKind, Role, Verdict
from dragon.domain.errors import Conflict, Forbidden


@dataclass(frozen=True)
class VerdictOutcome:
    """What recording one verdict does to the decision."""

    new_status: DecisionStatus  # PENDING_APPROVAL when the quorum is not reached yet
    approvals_count: int


def is_expired(decision: Decision, now: datetime) -> bool:
    return (
        decision.status is DecisionStatus.PENDING_APPROVAL
        and decision.expires_at is not None
        and now >= decision.expires_at
    )


def may_approve(principal: Principal, approver_roles: Sequence[str]) -> bool:
    """Roles are ordered, so the least of the listed roles is the bar to clear."""
    allowed = [Role(r) for r in approver_roles] or [Role.APPROVER]
    bar = min(allowed, key=lambda r: r.rank)
    return principal.role.includes(bar)


def judge_verdict(
    *,
    decision: Decision,
    existing: Sequence[Approval],
    principal: Principal,
    verdict: Verdict,
    now: datetime,
) -> VerdictOutcome:
    """Check one principal's verdict against every rule; raise if any refuses it."""
    if decision.status is not DecisionStatus.PENDING_APPROVAL:
        raise Conflict(
            f"decision {decision.id} is {decision.status}; only pending decisions take verdicts",
            code="decision_not_pending",
            current=decision.status.value,
        )
    if is_expired(decision, now):
        raise Conflict(
            f"decision {decision.id} expired at {decision.expires_at:%Y-%m-%dT%H:%M:%SZ}",
            code="decision_expired",
        )
    if principal.kind is PrincipalKind.ANALYZER:
        raise Forbidden(
            "an analyzer may propose decisions but never approve them",
            code="separation_of_duties",
        )
    if principal.id == decision.proposer_id:
        raise Forbidden(
            "the proposer of a decision cannot give a verdict on it",
            code="separation_of_duties",
        )
    if not may_approve(principal, decision.approver_roles):
        raise Forbidden(
            f"this decision needs a verdict from one of: {', '.join(decision.approver_roles)}",
            code="role_insufficient",
            required=list(decision.approver_roles),
            role=principal.role.value,
        )
    if any(a.principal_id == principal.id for a in existing):
        raise Conflict(
            f"{principal.name} has already given a verdict on decision {decision.id}",
            code="approval_duplicate",
        )
    approvals = sum(1 for a in existing if a.verdict is Verdict.APPROVE)
    if verdict is Verdict.REJECT:
        return VerdictOutcome(DecisionStatus.DENIED, approvals)
    approvals += 1
    if approvals >= decision.approvals_required:
        return VerdictOutcome(DecisionStatus.APPROVED, approvals)
    return VerdictOutcome(DecisionStatus.PENDING_APPROVAL, approvals)
