"""The gatekeeper: what triage makes of any text, and what policy would do with it, without
creating anything. `POST /api/support/evaluate` is the original AI Gatekeeper's name for it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import Field, StringConstraints

from dragon.api.access import GuardedRoute, services
from dragon.api.schemas import (
    Branch,
    Name,
    PolicyRef,
    Repo,
    Request,
    Response,
    RiskFactorOut,
    RiskOut,
    Sha,
)
from dragon.domain.policy import Effect
from dragon.domain.triage import TriageContext
from dragon.services.container import Services
from dragon.services.triage import TriageReport

router = APIRouter(tags=["triage"], route_class=GuardedRoute)
Labels = dict[Name, Annotated[str, Field(max_length=256)]]
MAX_TEXT = 262_144
_OUTCOMES = {
    Effect.AUTO_APPROVE: "auto",
    Effect.REQUIRE_APPROVAL: "needs_approval",
    Effect.DENY: "denied",
}


class TriageIn(Request):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
    source: Name | None = None
    repo: Repo | None = None
    branch: Branch | None = None
    environment: Name | None = None
    commit_sha: Sha | None = None
    labels: Labels = Field(default_factory=dict, max_length=50)


class SupportContext(Request):
    source: Name | None = None
    repo: Repo | None = None
    branch: Branch | None = None
    environment: Name | None = None
    commit_sha: Sha | None = None


class SupportEvaluateIn(Request):
    """The original `POST /api/support/evaluate`."""

    message: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    context: SupportContext | Annotated[str, StringConstraints(max_length=10_000)] | None = None


class EvidenceOut(Response):
    line: int
    text: str
    rule: str
    weight: int


class ProposedActionOut(Response):
    action: str
    params: dict[str, Any]
    rationale: str
    impact: str
    automatic: bool


class PolicyPreview(PolicyRef):
    outcome: Literal["auto", "needs_approval", "denied"]


class TriageOut(Response):
    classification: str
    confidence: float
    evidence: list[EvidenceOut]
    proposed_action: ProposedActionOut
    risk: RiskOut
    policy: PolicyPreview
    provenance: dict[str, Any]
    created: Literal[False] = False

    @classmethod
    def of(cls, report: TriageReport, provenance: dict[str, Any]) -> TriageOut:
        found = report.analysis.classification
        proposal = report.analysis.proposal
        risk, verdict = report.assessed.risk, report.assessed.verdict
        return cls(
            classification=found.failure_class.value,
            confidence=found.confidence,
            evidence=[EvidenceOut(**e.as_dict()) for e in found.evidence],
            proposed_action=ProposedActionOut(
                action=proposal.action,
                params=proposal.params,
                rationale=proposal.rationale,
                impact=proposal.impact,
                automatic=proposal.automatic,
            ),
            risk=RiskOut(
                score=risk.score,
                level=risk.level,
                factors=[
                    RiskFactorOut(name=f.name, weight=f.weight, detail=f.detail)
                    for f in risk.factors
                ],
            ),
            policy=PolicyPreview(
                outcome=_OUTCOMES[verdict.effect],
                version=verdict.policy_version,
                rule=verdict.rule_id,
                reason=verdict.reason,
                approvals_required=verdict.approvals_required,
                approver_roles=[r.value for r in verdict.approver_roles],
            ),
            provenance=provenance,
        )


def _context(
    *,
    source: str | None,
    repo: str | None,
    branch: str | None,
    environment: str | None,
    commit_sha: str | None,
    labels: dict[str, str] | None = None,
) -> TriageContext:
    return TriageContext(
        source=source,
        kind="alert_firing" if source == "alertmanager" else None,
        repo=repo,
        branch=branch,
        commit_sha=commit_sha,
        environment=environment,
        labels=labels or {},
    )


async def _evaluate(svc: Services, text: str, context: TriageContext) -> TriageOut:
    report = await svc.triage.evaluate(text, context)
    provenance = {**report.analysis.provenance, "latency_ms": report.latency_ms}
    return TriageOut.of(report, provenance)


@router.post("/api/v1/triage", response_model=TriageOut)
async def triage_text(body: TriageIn, svc: Annotated[Services, Depends(services)]) -> TriageOut:
    """Classify any text (a CI log, an alert, a support request), propose an action from the
    catalog, score its risk, and say what the active policy would do. Nothing is created."""
    context = _context(
        source=body.source,
        repo=body.repo,
        branch=body.branch,
        environment=body.environment,
        commit_sha=body.commit_sha,
        labels=body.labels,
    )
    return await _evaluate(svc, body.text, context)


@router.post("/api/support/evaluate", response_model=TriageOut)
async def support_evaluate(
    body: SupportEvaluateIn, svc: Annotated[Services, Depends(services)]
) -> TriageOut:
    """The original AI Gatekeeper's route: `message` (≤ 10,000 characters) and an optional
    `context`, either facts (`source`, `repo`, `branch`, `environment`, `commit_sha`) or more
    text. The same answer as `POST /api/v1/triage`."""
    text, facts = body.message, SupportContext()
    if isinstance(body.context, str):
        text = f"{text}\n{body.context}"
    elif body.context is not None:
        facts = body.context
    return await _evaluate(svc, text, _context(**facts.model_dump()))
