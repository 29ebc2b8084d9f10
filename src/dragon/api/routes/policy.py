"""The active policy: read it, replace it (YAML or JSON body), list its versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.schemas import PolicyOut, PolicyRuleOut, PolicySource, PolicyVersionOut
from dragon.domain.errors import ValidationFailed
from dragon.domain.policy import Policy
from dragon.services.container import Services
from dragon.services.context import Caller

router = APIRouter(prefix="/api/v1/policy", tags=["policy"], route_class=GuardedRoute)
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
_PUT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": PolicySource.model_json_schema()},
        },
    }
}


def _out(policy: Policy, activated_at: Any, activated_by: str | None) -> PolicyOut:
    return PolicyOut(
        version=policy.version,
        name=policy.name,
        source=policy.source,
        rules=[
            PolicyRuleOut(
                id=r.id,
                effect=r.effect.value,
                description=r.description,
                approvals=r.approvals,
                roles=[role.value for role in r.roles],
            )
            for r in policy.rules
        ],
        activated_at=activated_at,
        activated_by=activated_by,
    )


@router.get("", response_model=PolicyOut)
async def get_policy(svc: Annotated[Services, Depends(services)]) -> PolicyOut:
    policy, stored = await svc.policies.current()
    return _out(
        policy, stored.created_at if stored else None, stored.created_by if stored else None
    )


async def _source_of(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if content_type == "application/json":
        try:
            return PolicySource.model_validate_json(raw).source
        except ValidationError as exc:
            # Answered like a JSON body on any other route: 400 json_invalid when it is not
            # JSON, else 422 validation_failed with errors[] naming each field.
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from None
    if content_type in _YAML_TYPES:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed(
                "the policy is not UTF-8 text", code="encoding_invalid"
            ) from None
    raise ValidationFailed(
        'send the policy as application/yaml, or as application/json {"source": ...}',
        code="content_type_unsupported",
    )


@router.put("", response_model=PolicyOut, openapi_extra=_PUT_BODY)
async def replace_policy(
    request: Request,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> PolicyOut:
    """Validate and activate a new policy. Earlier versions are kept; decisions keep the
    version they were evaluated under."""
    stored = await svc.policies.replace(who, await _source_of(request))
    policy, _ = await svc.policies.current()
    return _out(policy, stored.created_at, stored.created_by)


@router.get("/versions", response_model=list[PolicyVersionOut])
async def policy_versions(svc: Annotated[Services, Depends(services)]) -> list[PolicyVersionOut]:
    return [PolicyVersionOut.model_validate(v) for v in await svc.policies.history()]
