"""Decisions and verdicts, and the original system's /api/decisions and /api/approvals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.decision_bodies import decision_page_response, decision_response
from dragon.api.rate_limits import rate_limit
from dragon.api.routes.incidents import Cursor, Limit
from dragon.api.schemas import (
    DecisionCreate,
    DecisionOut,
    DecisionPage,
    LegacyApproval,
    LegacyDecisionCreate,
    VerdictIn,
)
from dragon.domain.enums import DecisionStatus, Verdict
from dragon.domain.errors import ValidationFailed
from dragon.domain.ports import DecisionQuery, Page
from dragon.domain.risk import RiskFactor
from dragon.services.container import Services
from dragon.services.context import Caller
from dragon.services.decisions import Proposal

router = APIRouter(tags=["decisions"], route_class=GuardedRoute)
# Verdicts are counted per principal: a stolen or scripted approver key cannot flood a queue.
_VERDICT_LIMIT = [Depends(rate_limit("approvals", by="principal"))]


def _proposal(body: DecisionCreate, title: str) -> Proposal:
    return Proposal(
        action=body.action,
        title=title,
        incident_id=body.incident_id,
        params=body.params,
        rationale=body.rationale,
        impact=body.impact,
        risk_factors=tuple(
            RiskFactor(name=f.name, weight=f.weight, detail=f.detail) for f in body.risk.factors
        ),
        confidence=body.confidence,
        repo=body.repo,
        branch=body.branch,
        environment=body.environment,
        source=body.source,
    )


async def propose_and_answer(svc: Services, who: Caller, proposal: Proposal) -> Response:
    """Proposes `proposal` and answers 201 with the decision and its Location (the legacy
    action routes answer the same way)."""
    decision = await svc.decisions.propose(who, proposal)
    return decision_response(
        decision, [], status_code=201, headers={"Location": f"/api/v1/decisions/{decision.id}"}
    )


@router.post("/api/v1/decisions", status_code=201, response_model=DecisionOut)
async def propose_decision(
    body: DecisionCreate,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Propose an action. The active policy decides at once: auto-approved, pending approval
    (with how many approvals from which roles), or denied."""
    return await propose_and_answer(svc, who, _proposal(body, body.title))


@router.get("/api/v1/decisions", response_model=DecisionPage)
async def list_decisions(
    svc: Annotated[Services, Depends(services)],
    status: DecisionStatus | None = None,
    incident_id: Annotated[str | None, Query(max_length=40)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    items, next_cursor = await svc.decisions.find(
        DecisionQuery(
            status=status,
            incident_id=incident_id,
            action=action,
            page=Page(limit=limit, after=cursor),
        )
    )
    return decision_page_response(items, next_cursor)


@router.get("/api/v1/decisions/{decision_id}", response_model=DecisionOut)
async def get_decision(decision_id: str, svc: Annotated[Services, Depends(services)]) -> Response:
    view = await svc.decisions.get(decision_id)
    return decision_response(view.decision, view.approvals)


async def _verdict(
    svc: Services, who: Caller, decision_id: str, verdict: Verdict, justification: str
) -> Response:
    view = await svc.decisions.give_verdict(
        who, decision_id, verdict=verdict, justification=justification
    )
    return decision_response(view.decision, view.approvals)


@router.post(
    "/api/v1/decisions/{decision_id}/approve",
    response_model=DecisionOut,
    dependencies=_VERDICT_LIMIT,
)
async def approve_decision(
    decision_id: str,
    body: VerdictIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    return await _verdict(svc, who, decision_id, Verdict.APPROVE, body.justification)


@router.post(
    "/api/v1/decisions/{decision_id}/reject",
    response_model=DecisionOut,
    dependencies=_VERDICT_LIMIT,
)
async def reject_decision(
    decision_id: str,
    body: VerdictIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    return await _verdict(svc, who, decision_id, Verdict.REJECT, body.justification)


@router.post("/api/decisions", status_code=201, response_model=DecisionOut, tags=["compatibility"])
async def legacy_propose_decision(
    body: LegacyDecisionCreate,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Alias of `POST /api/v1/decisions` for the original system's clients; `title` optional."""
    return await propose_and_answer(svc, who, _proposal(body, body.title or body.action))


@router.post(
    "/api/approvals",
    response_model=DecisionOut,
    tags=["compatibility"],
    dependencies=_VERDICT_LIMIT,
)
async def legacy_approval(
    body: LegacyApproval,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Alias of approve/reject for the original system's clients. The approver is the
    authenticated principal; a body `approver` is ignored."""
    if body.incident_id is not None:
        view = await svc.decisions.get(body.decision_id)
        if view.decision.incident_id != body.incident_id:
            raise ValidationFailed(
                f"decision {body.decision_id} does not belong to incident {body.incident_id}",
                code="decision_incident_mismatch",
            )
    verdict = Verdict.APPROVE if body.approved else Verdict.REJECT
    return await _verdict(svc, who, body.decision_id, verdict, body.justification)
