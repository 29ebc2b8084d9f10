"""The public playground: a visitor's proposal judged by the real risk model and default policy,
in an isolated in-memory store. Nothing runs, nobody is notified, real data is never touched."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, StringConstraints

from dragon.api.access import GuardedRoute, services
from dragon.api.rate_limits import rate_limit
from dragon.api.schemas import Branch, Repo, Request, Response, Title
from dragon.services.container import Services
from dragon.services.playground import PlaygroundProposal, PlaygroundStats, PlaygroundVerdict

router = APIRouter(tags=["playground"], route_class=GuardedRoute)
# One budget per client address, shared by the page and both paths of the endpoint.
_LIMITED = [Depends(rate_limit("playground", by="address"))]
Prose = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Environment = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Action = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")]


class PlaygroundIn(Request):
    title: Title
    action: Action
    rationale: Prose = ""
    impact: Prose = ""
    repo: Repo | None = None
    branch: Branch | None = None
    environment: Environment | None = None
    scenario: Annotated[str, StringConstraints(max_length=64)] | None = None


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

    @classmethod
    def from_verdict(cls, v: PlaygroundVerdict) -> PlaygroundOut:
        return cls(
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
    proposal: PlaygroundIn


class StatsOut(Response):
    total: int
    by_outcome: dict[str, int]
    by_risk_level: dict[str, int]
    by_action: dict[str, int]
    window_hours: int = 24

    @classmethod
    def from_stats(cls, s: PlaygroundStats) -> StatsOut:
        return cls(
            total=s.total,
            by_outcome=s.by_effect,
            by_risk_level=s.by_risk_level,
            by_action=s.by_action,
        )


def _judge(body: PlaygroundIn, svc: Services) -> PlaygroundOut:
    return PlaygroundOut.from_verdict(svc.playground.judge(PlaygroundProposal(**body.model_dump())))


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
    default policy decides (auto-approve, approvals from which roles, or deny). Never runs it."""
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


def _scenarios(svc: Services) -> list[ScenarioOut]:
    return [
        ScenarioOut(
            id=s.id,
            name=s.name,
            proposal=PlaygroundIn.model_validate(
                {k: v for k, v in vars(s.proposal).items() if v is not None}
            ),
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
