"""Decision response bodies built straight from the entities and encoded once by orjson.

Every decision route answers with these bytes: a 50-row listing spent most of its time building
pydantic models only to dump them. `schemas.DecisionOut` still documents the shape (the routes'
response_model) and the tests hold both to the same JSON."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from dragon.domain.entities import Approval, Decision

# pydantic writes a UTC time as ...Z; orjson does the same with OPT_UTC_Z.
_OPTIONS = orjson.OPT_UTC_Z


def approval_body(a: Approval) -> dict[str, Any]:
    return {
        "id": a.id,
        "principal_id": a.principal_id,
        "principal_name": a.principal_name,
        "verdict": a.verdict,
        "justification": a.justification,
        "via": a.via,
        "created_at": a.created_at,
    }


def decision_body(d: Decision, approvals: list[Approval] | None = None) -> dict[str, Any]:
    """The `DecisionOut` fields, in its order; `approvals` is null when they were not loaded."""
    return {
        "id": d.id,
        "incident_id": d.incident_id,
        "title": d.title,
        "action": d.action,
        "params": d.params,
        "rationale": d.rationale,
        "impact": d.impact,
        "risk": {
            "score": d.risk_score,
            "level": d.risk_level,
            "factors": [
                {"name": f["name"], "weight": f["weight"], "detail": f["detail"]}
                for f in d.risk_factors
            ],
        },
        "confidence": d.confidence,
        "proposer": {"id": d.proposer_id, "name": d.proposer_name, "kind": d.proposer_kind},
        "provenance": d.provenance,
        "repo": d.repo,
        "branch": d.branch,
        "environment": d.environment,
        "source": d.source,
        "status": d.status,
        "policy": {
            "version": d.policy_version,
            "rule": d.policy_rule,
            "reason": d.policy_reason,
            "approvals_required": d.approvals_required,
            "approver_roles": d.approver_roles,
        },
        "expires_at": d.expires_at,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "decided_at": d.decided_at,
        "approvals": None if approvals is None else [approval_body(a) for a in approvals],
    }


def decision_response(
    d: Decision,
    approvals: list[Approval] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        orjson.dumps(decision_body(d, approvals), option=_OPTIONS),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def decision_page_response(items: list[Decision], next_cursor: str | None) -> Response:
    body = {"items": [decision_body(d) for d in items], "next_cursor": next_cursor}
    return Response(orjson.dumps(body, option=_OPTIONS), media_type="application/json")
