"""The public playground: a visitor's proposal, or a failing CI log the built-in analyzer turns
into one, judged by the real risk model and default policy, in an isolated in-memory store.
Nothing runs, nobody is notified, real data is never touched, no LLM is asked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, StringConstraints

from dragon.api.access import GuardedRoute, services
from dragon.api.rate_limits import rate_limit
from dragon.api.routes.triage import EvidenceOut
from dragon.api.schemas import Branch, Repo, Request, Response, Title
from dragon.domain.errors import ValidationFailed
from dragon.services.container import Services
from dragon.services.playground import (
    MAX_LOG_CHARS,
    FailingCi,
    PlaygroundProposal,
    PlaygroundStats,
    PlaygroundVerdict,
    Scenario,
)

router = APIRouter(tags=["playground"], route_class=GuardedRoute)
# One budget per client address, shared by the page and both paths of the endpoint.
_LIMITED = [Depends(rate_limit("playground", by="address"))]
Prose = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Environment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Action = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")]


Log = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LOG_CHARS)]
CommitSha = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{7,40}$")]
JobName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class PlaygroundIn(Request):
    """Either a proposed action (`title` and `action`), or a failing CI job's `log` (with where
    it ran), from which the built-in analyzer proposes the action."""

    title: Title | None = None
    action: Action | None = None
    rationale: Prose = ""
    impact: Prose = ""
    repo: Repo | None = None
    branch: Branch | None = None
    environment: Environment | None = None
    scenario: Annotated[str, StringConstraints(max_length=64)] | None = None
    log: Log | None = None
    source: Literal["github", "gitlab", "jenkins"] | None = None
    commit_sha: CommitSha | None = None
    job: JobName | None = None


class AnalysisOut(Response):
    analyzer: str
    analyzer_version: str
    classification: str
    confidence: float
    evidence: list[EvidenceOut]
    scores: dict[str, int]
    proposed_action: str
    params: dict[str, Any]
    rationale: str
    impact: str
    automatic: bool


class FactorOut(Response):
    name: str
    weight: int
    detail: str


class PlaygroundOut(Response):
    id: str
    title: str
    action: str
    risk_score: int
    risk_level: str
    risk_factors: list[FactorOut]
    outcome: str
    approval_needed: bool
    approvals_required: int
    approver_roles: list[str]
    policy_rule: str
    policy_reason: str
    policy_version: str
    executed: bool
    created_at: datetime
    expires_at: datetime
    analysis: AnalysisOut | None = None

    @classmethod
    def from_verdict(cls, v: PlaygroundVerdict) -> PlaygroundOut:
        analysis = None
        if v.analysis is not None:
            found = v.analysis.classification
            analysis = AnalysisOut(
                analyzer=str(v.analysis.provenance["analyzer"]),
                analyzer_version=str(v.analysis.provenance["analyzer_version"]),
                classification=found.failure_class.value,
                confidence=found.confidence,
                evidence=[EvidenceOut(**e.as_dict()) for e in found.evidence],
                scores=dict(found.scores),
                proposed_action=v.analysis.proposal.action,
                params=dict(v.analysis.proposal.params),
                rationale=v.analysis.proposal.rationale,
                impact=v.analysis.proposal.impact,
                automatic=v.analysis.proposal.automatic,
            )
        return cls(
            analysis=analysis,
            id=v.id,
            title=v.proposal.title,
            action=v.proposal.action,
            risk_score=v.risk_score,
            risk_level=v.risk_level.value,
            risk_factors=[
                FactorOut(name=f.name, weight=f.weight, detail=f.detail) for f in v.risk_factors
            ],
            outcome=v.effect.value,
            approval_needed=v.approvals_required > 0,
            approvals_required=v.approvals_required,
            approver_roles=list(v.approver_roles),
            policy_rule=v.policy_rule,
            policy_reason=v.policy_reason,
            policy_version=v.policy_version,
            executed=v.executed,
            created_at=v.created_at,
            expires_at=v.expires_at,
        )


class ScenarioOut(BaseModel):
    id: str
    name: str
    kind: Literal["proposal", "ci_log"]
    proposal: PlaygroundIn  # the body to post for it


class StatsOut(Response):
    total: int
    by_outcome: dict[str, int]
    by_risk_level: dict[str, int]
    by_action: dict[str, int]
    analyzed: int
    by_classification: dict[str, int]
    window_hours: int = 24

    @classmethod
    def from_stats(cls, s: PlaygroundStats) -> StatsOut:
        return cls(
            total=s.total,
            by_outcome=s.by_effect,
            by_risk_level=s.by_risk_level,
            by_action=s.by_action,
            analyzed=s.analyzed,
            by_classification=s.by_classification,
        )


_LOG_ONLY = ("source", "commit_sha", "job")
_PROPOSAL_ONLY = ("title", "action", "rationale", "impact", "environment")


def _problems(body: PlaygroundIn) -> list[dict[str, str]]:
    """A proposal and a log are two ways in; a field of the other way is a mistake."""
    given = body.model_dump(exclude_defaults=True)
    found: dict[str, str] = {}
    if body.log is not None:
        for name in _PROPOSAL_ONLY:
            if name in given:
                found[name] = "leave it out with a log: the analyzer proposes the action"
    else:
        for name in _LOG_ONLY:
            if name in given:
                found[name] = "is only read with a log"
        for name in ("title", "action"):
            if name not in given:
                found[name] = "is required (or send a CI log instead)"
    return [{"location": "body", "field": f, "message": m} for f, m in found.items()]


def _judge(body: PlaygroundIn, svc: Services) -> PlaygroundOut:
    if problems := _problems(body):
        raise ValidationFailed(
            f"{len(problems)} field(s) are invalid", code="validation_failed", errors=problems
        )
    if body.log is not None:
        failure = FailingCi(
            log=body.log,
            source=body.source or "github",
            repo=body.repo,
            branch=body.branch,
            commit_sha=body.commit_sha,
            job=body.job,
            scenario=body.scenario,
        )
        return PlaygroundOut.from_verdict(svc.playground.analyze(failure))
    fields = body.model_dump(exclude={"log", *_LOG_ONLY})
    return PlaygroundOut.from_verdict(svc.playground.judge(PlaygroundProposal(**fields)))


@router.post(
    "/api/v1/playground/decisions",
    status_code=201,
    response_model=PlaygroundOut,
    dependencies=_LIMITED,
)
async def playground_decision(
    body: PlaygroundIn, svc: Annotated[Services, Depends(services)]
) -> PlaygroundOut:
    """Judge a proposed action as Dragon would: risk score, level and factors, and what the
    default policy decides (auto-approve, approvals from which roles, or deny). Or send a
    failing CI job's `log` instead of `title` and `action`: the built-in analyzer classifies
    it, shows its evidence lines and proposes the action that is then judged. Never runs it."""
    return _judge(body, svc)


@router.post(
    "/api/playground/submit-decision",
    status_code=201,
    response_model=PlaygroundOut,
    tags=["compatibility"],
    dependencies=_LIMITED,
)
async def legacy_playground_decision(
    body: PlaygroundIn, svc: Annotated[Services, Depends(services)]
) -> PlaygroundOut:
    """Alias of `POST /api/v1/playground/decisions` for the original system's clients."""
    return _judge(body, svc)


def scenario_body(scenario: Scenario) -> PlaygroundIn:
    """What a client posts to try the scenario."""
    fields = vars(scenario.proposal or scenario.failure)
    return PlaygroundIn.model_validate({k: v for k, v in fields.items() if v is not None})


def _scenarios(svc: Services) -> list[ScenarioOut]:
    return [
        ScenarioOut(
            id=s.id,
            name=s.name,
            kind="proposal" if s.proposal else "ci_log",
            proposal=scenario_body(s),
        )
        for s in svc.playground.scenarios()
    ]


@router.get("/api/v1/playground/scenarios", response_model=list[ScenarioOut])
async def playground_scenarios(svc: Annotated[Services, Depends(services)]) -> list[ScenarioOut]:
    """Preset proposals to try."""
    return _scenarios(svc)


@router.get("/api/playground/scenarios", response_model=list[ScenarioOut], tags=["compatibility"])
async def legacy_playground_scenarios(
    svc: Annotated[Services, Depends(services)],
) -> list[ScenarioOut]:
    """Alias of `GET /api/v1/playground/scenarios`."""
    return _scenarios(svc)


@router.get("/api/v1/playground/stats", response_model=StatsOut)
async def playground_stats(svc: Annotated[Services, Depends(services)]) -> StatsOut:
    """Counts of the playground's proposals kept in the last day; real counts, nothing padded."""
    return StatsOut.from_stats(svc.playground.stats())
