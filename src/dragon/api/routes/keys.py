"""API keys: who am I, and (admins) list, create and revoke keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dragon.api.access import GuardedRoute, caller, principal_of, services
from dragon.api.schemas import IssuedKeyOut, KeyCreate, KeyOut, PrincipalOut
from dragon.domain.entities import Principal
from dragon.services.container import Services
from dragon.services.context import Caller

router = APIRouter(prefix="/api/v1", tags=["identity"], route_class=GuardedRoute)


@router.get("/me", response_model=PrincipalOut)
async def who_am_i(principal: Annotated[Principal, Depends(principal_of)]) -> PrincipalOut:
    return PrincipalOut.of(principal)


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(svc: Annotated[Services, Depends(services)]) -> list[KeyOut]:
    return [KeyOut.of(k, p) for k, p in await svc.auth.list_keys()]


@router.post("/keys", status_code=201, response_model=IssuedKeyOut)
async def create_key(
    body: KeyCreate,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> IssuedKeyOut:
    issued = await svc.auth.create_key(who, name=body.name, role=body.role, email=body.email)
    base = KeyOut.of(issued.key, issued.principal)
    return IssuedKeyOut(**base.model_dump(), key=issued.secret)


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(
    key_id: str,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> KeyOut:
    key = await svc.auth.revoke_key(who, key_id)
    return KeyOut.of(key, None)
