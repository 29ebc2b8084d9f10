"""Decision use cases: propose (policy decides what happens next), give verdicts, expire."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dragon.domain.actions import action_spec
from dragon.domain.approvals import is_expired, judge_verdict
from dragon.domain.clock import Clock
from dragon.domain.entities import Approval, Decision, Incident
from dragon.domain.enums import ApprovalChannel, DecisionStatus, Verdict
from dragon.domain.errors import Conflict, Forbidden, NotFound
from dragon.domain.ids import new_id
from dragon.domain.policy import DecisionFacts, Effect, Policy, PolicyVerdict, evaluate
from dragon.domain.ports import DecisionQuery, UnitOfWork, UnitOfWorkFactory
from dragon.domain.risk import RiskAssessment, RiskFactor, assess
from dragon.domain.transitions import transition_decision
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER, Caller
from dragon.services.incidents import load_incident
from dragon.services.outbox import notify
from dragon.services.policies import PolicyService

_OUTCOME_STATUS = {
    Effect.AUTO_APPROVE: DecisionStatus.AUTO_APPROVED,
    Effect.REQUIRE_APPROVAL: DecisionStatus.PENDING_APPROVAL,
    Effect.DENY: DecisionStatus.DENIED,
}


@dataclass(frozen=True, kw_only=True)
class Proposal:
    action: str
    title: str
    incident_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    rationale: str = ""
    impact: str = ""
    risk_factors: tuple[RiskFactor, ...] = ()
    confidence: float | None = None
    repo: str | None = None
    branch: str | None = None
    environment: str | None = None
    source: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Assessed:
    """A proposal scored and judged by the active policy, before anything is stored."""

    risk: RiskAssessment
    verdict: PolicyVerdict
    repo: str | None
    branch: str | None
    environment: str | None
    source: str | None
    incident: Incident | None = None


@dataclass(frozen=True)
class DecisionView:
    decision: Decision
    approvals: list[Approval]


def _verdict_event(verdict: Verdict, status: DecisionStatus, *, moved: bool) -> str:
    if not moved:
        return "decision.approval_recorded"
    return "decision.rejected" if verdict is Verdict.REJECT else f"decision.{status.value}"


async def load_decision(uow: UnitOfWork, decision_id: str, *, for_update: bool = False) -> Decision:
    decision = await uow.decisions.get(decision_id, for_update=for_update)
    if decision is None:
        raise NotFound(f"no decision {decision_id}", code="decision_not_found")
    return decision


class DecisionService:
    def __init__(self, uow: UnitOfWorkFactory, *, policies: PolicyService, clock: Clock) -> None:
        self._uow = uow
        self._policies = policies
        self._clock = clock

    async def propose(self, caller: Caller, proposal: Proposal) -> Decision:
        now = self._clock()
        async with self._uow() as uow:
            decision = await self.propose_in(uow, caller, proposal, now=now)
            await uow.commit()
        return decision

    async def preview(self, proposal: Proposal) -> Assessed:
        """What proposing would score and what the active policy would do; nothing is written."""
        async with self._uow(write=False) as uow:
            return await self._assess(uow, proposal)

    async def policy_in(self, uow: UnitOfWork) -> Policy:
        """The policy in force for this transaction, for proposals that share it."""
        return await self._policies.active_in(uow)

    async def _assess(
        self, uow: UnitOfWork, proposal: Proposal, *, policy: Policy | None = None
    ) -> Assessed:
        spec = action_spec(proposal.action)
        repo, branch = proposal.repo, proposal.branch
        environment, source = proposal.environment, proposal.source
        incident: Incident | None = None
        if proposal.incident_id:
            incident = await load_incident(uow, proposal.incident_id)
            repo, branch = repo or incident.repo, branch or incident.branch
            environment = environment or incident.environment
            source = source or incident.source
        risk = assess(
            action=spec, branch=branch, environment=environment, extra=proposal.risk_factors
        )
        if policy is None:
            policy = await self._policies.active_in(uow)
        verdict = evaluate(
            policy,
            DecisionFacts(
                action=spec.name,
                destructive=spec.destructive,
                risk_score=risk.score,
                risk_level=risk.level,
                repo=repo,
                branch=branch,
                environment=environment,
                source=source,
            ),
        )
        return Assessed(
            risk=risk,
            verdict=verdict,
            repo=repo,
            branch=branch,
            environment=environment,
            source=source,
            incident=incident,
        )

    async def propose_in(
        self,
        uow: UnitOfWork,
        caller: Caller,
        proposal: Proposal,
        *,
        now: datetime,
        policy: Policy | None = None,
    ) -> Decision:
        """Propose inside the caller's transaction (triage commits its own record with it);
        `policy`, when given, is the one `policy_in` read in this transaction."""
        assessed = await self._assess(uow, proposal, policy=policy)
        risk, verdict = assessed.risk, assessed.verdict
        decision = Decision(
            id=new_id("dec", now),
            incident_id=proposal.incident_id,
            title=proposal.title,
            action=proposal.action,
            params=dict(proposal.params),
            rationale=proposal.rationale,
            impact=proposal.impact,
            risk_score=risk.score,
            risk_level=risk.level,
            risk_factors=[
                {"name": f.name, "weight": f.weight, "detail": f.detail} for f in risk.factors
            ],
            confidence=proposal.confidence,
            proposer_id=caller.principal.id,
            proposer_name=caller.principal.name,
            proposer_kind=caller.principal.kind,
            provenance=dict(proposal.provenance),
            repo=assessed.repo,
            branch=assessed.branch,
            environment=assessed.environment,
            source=assessed.source,
            policy_version=verdict.policy_version,
            policy_rule=verdict.rule_id,
            policy_reason=verdict.reason,
            approvals_required=verdict.approvals_required,
            approver_roles=[r.value for r in verdict.approver_roles],
            created_at=now,
            updated_at=now,
        )
        target = _OUTCOME_STATUS[verdict.effect]
        transition_decision(decision, target, now=now)
        if verdict.expires_in is not None:
            decision.expires_at = now + verdict.expires_in
        await uow.decisions.add(decision)
        await record(
            uow,
            caller,
            action="decision.proposed",
            details={
                "action": decision.action,
                "incident_id": decision.incident_id,
                "risk_score": decision.risk_score,
                "risk_level": decision.risk_level.value,
            },
            target_type="decision",
            target_id=decision.id,
            now=now,
        )
        await record(
            uow,
            caller,
            action=f"decision.{target.value}",
            details={
                "policy_version": verdict.policy_version,
                "policy_rule": verdict.rule_id,
                "approvals_required": verdict.approvals_required,
                "approver_roles": decision.approver_roles,
                "expires_at": decision.expires_at.isoformat() if decision.expires_at else None,
            },
            target_type="decision",
            target_id=decision.id,
            now=now,
        )
        # One notification per proposal, named for where policy sent it.
        await notify(
            uow,
            event=f"decision.{target.value}",
            now=now,
            incident=assessed.incident,
            decision=decision,
            details={"proposer": caller.principal.name, "policy_reason": verdict.reason},
        )
        return decision

    async def get(self, decision_id: str) -> DecisionView:
        async with self._uow(write=False) as uow:
            decision = await load_decision(uow, decision_id)
            return DecisionView(decision, await uow.approvals.for_decision(decision_id))

    async def find(self, query: DecisionQuery) -> tuple[list[Decision], str | None]:
        async with self._uow(write=False) as uow:
            return await uow.decisions.find(query)

    async def give_verdict(
        self,
        caller: Caller,
        decision_id: str,
        *,
        verdict: Verdict,
        justification: str,
        via: ApprovalChannel = ApprovalChannel.API,
    ) -> DecisionView:
        """Record one principal's approve or reject, under every rule of domain.approvals."""
        now = self._clock()
        async with self._uow() as uow:
            decision = await load_decision(uow, decision_id, for_update=True)
            if is_expired(decision, now):
                await self._expire(uow, decision, now)
                await uow.commit()
                raise Conflict(f"decision {decision.id} has expired", code="decision_expired")
            existing = await uow.approvals.for_decision(decision_id)
            refusal: Forbidden | None = None
            try:
                outcome = judge_verdict(
                    decision=decision,
                    existing=existing,
                    principal=caller.principal,
                    verdict=verdict,
                    now=now,
                )
            except Forbidden as refused:
                refusal = refused
            else:
                approval = Approval(
                    id=new_id("apv", now),
                    decision_id=decision.id,
                    principal_id=caller.principal.id,
                    principal_name=caller.principal.name,
                    verdict=verdict,
                    justification=justification,
                    via=via,
                    created_at=now,
                )
                await uow.approvals.add(approval)
                await record(
                    uow,
                    caller,
                    action="approval.approved"
                    if verdict is Verdict.APPROVE
                    else "approval.rejected",
                    target_type="decision",
                    target_id=decision.id,
                    now=now,
                    details={
                        "approval_id": approval.id,
                        "justification": justification,
                        "via": via.value,
                        "approvals": outcome.approvals_count,
                        "approvals_required": decision.approvals_required,
                        "policy_version": decision.policy_version,
                    },
                )
                moved = outcome.new_status is not decision.status
                if moved:
                    transition_decision(decision, outcome.new_status, now=now)
                    await record(
                        uow,
                        caller,
                        action=f"decision.{outcome.new_status.value}",
                        target_type="decision",
                        target_id=decision.id,
                        now=now,
                        details={"approvals": outcome.approvals_count},
                    )
                await notify(
                    uow,
                    event=_verdict_event(verdict, outcome.new_status, moved=moved),
                    now=now,
                    decision=decision,
                    details={
                        "by": caller.principal.name,
                        "verdict": verdict.value,
                        "via": via.value,
                        "approvals": outcome.approvals_count,
                    },
                )
                existing.append(approval)
            await uow.commit()
        if refusal is not None:
            # Refused attempts are evidence too: record who tried, in a transaction of its own.
            await self._record_refusal(caller, decision_id, refusal, via=via, now=now)
            raise refusal
        return DecisionView(decision, existing)

    async def _record_refusal(
        self,
        caller: Caller,
        decision_id: str,
        refusal: Forbidden,
        *,
        via: ApprovalChannel,
        now: datetime,
    ) -> None:
        async with self._uow() as uow:
            await record(
                uow,
                caller,
                action="approval.refused",
                target_type="decision",
                target_id=decision_id,
                now=now,
                details={"code": refusal.code, "reason": refusal.message, "via": via.value},
            )
            await uow.commit()

    async def _expire(self, uow: UnitOfWork, decision: Decision, now: datetime) -> None:
        transition_decision(decision, DecisionStatus.EXPIRED, now=now)
        await record(
            uow,
            SYSTEM_CALLER,
            action="decision.expired",
            target_type="decision",
            target_id=decision.id,
            now=now,
            details={
                "expires_at": decision.expires_at.isoformat() if decision.expires_at else None
            },
        )
        await notify(uow, event="decision.expired", now=now, decision=decision)

    async def expire_overdue(self, *, batch: int = 100) -> int:
        """Expire pending decisions past their deadline; returns how many it expired."""
        now = self._clock()
        async with self._uow() as uow:
            overdue = await uow.decisions.overdue(now=now, limit=batch)
            for decision in overdue:
                await self._expire(uow, decision, now)
            await uow.commit()
        return len(overdue)
