"""Console pages for governing: the approval queue, the audit log, the policy and its simulator,
and API keys. Every change goes through the same use cases as the API (via=web)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.responses import RedirectResponse, Response

from dragon.api.access import GuardedRoute, caller, principal_of, services
from dragon.api.problems import STATUS_BY_KIND
from dragon.api.schemas import KeyCreate, VerdictIn
from dragon.domain.entities import Principal
from dragon.domain.enums import ApprovalChannel, DecisionStatus, Role, Verdict
from dragon.domain.errors import DragonError, PolicyInvalid
from dragon.domain.ports import AuditQuery, DecisionQuery, Page
from dragon.services.container import Services
from dragon.services.context import Caller
from dragon.services.policy_simulation import simulate
from dragon.web.rendering import form_of, render

router = APIRouter(route_class=GuardedRoute, include_in_schema=False)
Who = Annotated[Principal, Depends(principal_of)]
Svc = Annotated[Services, Depends(services)]
_NOTICES = {
    "approve": "Your approval was recorded.",
    "reject": "Your rejection was recorded.",
    "revoked": "The key was revoked.",
}


def field_errors(exc: ValidationError) -> dict[str, str]:
    return {str(e["loc"][0]) if e["loc"] else "form": str(e["msg"]) for e in exc.errors()}


def validated(model: type[BaseModel], data: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    try:
        return model.model_validate(data), {}
    except ValidationError as exc:
        return None, field_errors(exc)


async def _queue(
    request: Request,
    who: Principal,
    svc: Services,
    *,
    status_code: int = 200,
    errors: dict[str, dict[str, str]] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    pending, _ = await svc.decisions.find(
        DecisionQuery(status=DecisionStatus.PENDING_APPROVAL, page=Page(limit=100))
    )
    views = [await svc.decisions.get(d.id) for d in pending]
    return render(
        request,
        "approvals.html",
        principal=who,
        status_code=status_code,
        views=views,
        can_decide=who.role.includes(Role.APPROVER),
        errors=errors or {},
        values=values or {},
        notice=_NOTICES.get(request.query_params.get("notice", "")),
    )


@router.get("/approvals")
async def approvals_page(request: Request, who: Who, svc: Svc) -> Response:
    return await _queue(request, who, svc)


@router.post("/approvals/{decision_id}")
async def give_verdict(
    request: Request,
    decision_id: str,
    who: Annotated[Caller, Depends(caller)],
    svc: Svc,
) -> Response:
    """Approve or reject from the queue. Role, separation of duties, quorum and expiry are
    judged by the decisions use case, exactly as for the API."""
    form = await form_of(request)
    verdict_name = form.get("verdict", "")
    body, errors = validated(VerdictIn, {"justification": form.get("justification", "")})
    if verdict_name not in {v.value for v in Verdict}:
        errors["verdict"] = "choose Approve or Reject"
    if errors:
        return await _queue(
            request,
            who.principal,
            svc,
            status_code=422,
            errors={decision_id: errors},
            values={decision_id: form.get("justification", "")},
        )
    try:
        await svc.decisions.give_verdict(
            who,
            decision_id,
            verdict=Verdict(verdict_name),
            justification=body.justification,
            via=ApprovalChannel.WEB,
        )
    except DragonError as exc:
        return await _queue(
            request,
            who.principal,
            svc,
            status_code=STATUS_BY_KIND[exc.kind],
            errors={decision_id: {"form": exc.message}},
            values={decision_id: form.get("justification", "")},
        )
    return RedirectResponse(f"/approvals?notice={verdict_name}", status_code=303)


@router.get("/audit")
async def audit_page(
    request: Request,
    who: Who,
    svc: Svc,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    cursor: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    limit = 50
    events = await svc.audit.find(
        AuditQuery(
            action=action or None, target_id=target_id or None, after_seq=cursor, limit=limit
        )
    )
    report = await svc.audit.verify()
    next_cursor = events[-1].seq if len(events) == limit and events[-1].seq > 1 else None
    return render(
        request,
        "audit.html",
        principal=who,
        events=events,
        report=report,
        next_cursor=next_cursor,
        filters={"action": action or "", "target_id": target_id or ""},
    )


async def _policy_page(
    request: Request,
    who: Principal,
    svc: Services,
    *,
    status_code: int = 200,
    candidate: str | None = None,
    last: int = 50,
    problems: list[str] | None = None,
    simulation: Any = None,
) -> Response:
    policy, stored = await svc.policies.current()
    return render(
        request,
        "policy.html",
        principal=who,
        status_code=status_code,
        policy=policy,
        stored=stored,
        versions=await svc.policies.history(limit=20),
        candidate=candidate if candidate is not None else policy.source,
        last=last,
        problems=problems or [],
        simulation=simulation,
    )


@router.get("/policy")
async def policy_page(request: Request, who: Who, svc: Svc) -> Response:
    return await _policy_page(request, who, svc)


@router.post("/policy/simulate")
async def simulate_policy(request: Request, who: Who, svc: Svc) -> Response:
    """What the pasted policy would have decided for the last N decisions. Nothing is saved."""
    form = await form_of(request)
    source = form.get("source", "")
    try:
        last = max(1, min(int(form.get("last", "50") or 50), 500))
    except ValueError:
        return await _policy_page(
            request,
            who,
            svc,
            status_code=422,
            candidate=source,
            problems=["the number of decisions must be a whole number from 1 to 500"],
        )
    try:
        result = await simulate(svc.decisions, source=source, last=last)
    except PolicyInvalid as exc:
        return await _policy_page(
            request,
            who,
            svc,
            status_code=422,
            candidate=source,
            last=last,
            problems=[str(p) for p in exc.problems],
        )
    return await _policy_page(request, who, svc, candidate=source, last=last, simulation=result)


async def _keys_page(
    request: Request,
    who: Principal,
    svc: Services,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    issued: Any = None,
) -> Response:
    return render(
        request,
        "keys.html",
        principal=who,
        status_code=status_code,
        keys=await svc.auth.list_keys(),
        roles=list(Role),
        errors=errors or {},
        values=values or {},
        issued=issued,
        notice=_NOTICES.get(request.query_params.get("notice", "")),
    )


@router.get("/keys")
async def keys_page(request: Request, who: Who, svc: Svc) -> Response:
    return await _keys_page(request, who, svc)


@router.post("/keys")
async def create_key(
    request: Request, who: Annotated[Caller, Depends(caller)], svc: Svc
) -> Response:
    form = await form_of(request)
    values = {"name": form.get("name", ""), "role": form.get("role", "")}
    body, errors = validated(KeyCreate, values)
    if errors:
        return await _keys_page(
            request, who.principal, svc, status_code=422, errors=errors, values=values
        )
    try:
        issued = await svc.auth.create_key(who, name=body.name, role=body.role)
    except DragonError as exc:
        return await _keys_page(
            request,
            who.principal,
            svc,
            status_code=409,
            errors={"name": exc.message},
            values=values,
        )
    # The secret is shown in this one response and never again (no-store keeps it out of caches).
    return await _keys_page(request, who.principal, svc, status_code=201, issued=issued)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(
    request: Request, key_id: str, who: Annotated[Caller, Depends(caller)], svc: Svc
) -> Response:
    try:
        await svc.auth.revoke_key(who, key_id)
    except DragonError as exc:
        return await _keys_page(
            request, who.principal, svc, status_code=409, errors={"form": exc.message}
        )
    return RedirectResponse("/keys?notice=revoked", status_code=303)
