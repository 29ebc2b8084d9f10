"""Probes: /livez (the process answers), /readyz (the store is usable; `degraded` without
Redis), /health (old alias)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dragon.api.access import GuardedRoute, services
from dragon.api.problems import correlation_id_of, problem
from dragon.api.readiness import Readiness
from dragon.services.container import Services
from dragon.store.breaker_board import worst

router = APIRouter(tags=["health"], route_class=GuardedRoute)


@router.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


async def _readiness(request: Request, svc: Services) -> dict[str, Any] | Response:
    readiness: Readiness = request.app.state.readiness
    report = await readiness.report()
    checks = dict(report.checks)
    failing = report.failing
    if not getattr(request.app.state, "ready", False):
        checks["startup"] = failing["startup"] = "initialisation has not finished"
    if failing:
        return problem(
            503,
            "not_ready",
            "failing checks: " + ", ".join(f"{k} ({v})" for k, v in failing.items()),
            correlation_id=correlation_id_of(request),
            headers={"Retry-After": "5"},
            checks=checks,
        )
    # A breaker open in any process (a worker calling a hung integration, say) shows here.
    breakers = worst(svc.breakers.states(), *report.fleet_breakers.values())
    fleet = {"fleet_breakers": report.fleet_breakers} if report.fleet_breakers else {}
    degraded = report.degraded
    if degraded:
        # Still 200: degraded is not unready; the reasons say what is missing.
        return {
            "status": "degraded",
            "checks": checks,
            "degraded": degraded,
            "breakers": breakers,
            **fleet,
        }
    return {"status": "ok", "checks": checks, "breakers": breakers, **fleet}


@router.get("/readyz", response_model=None)
async def readyz(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any] | Response:
    return await _readiness(request, svc)


@router.get("/health", response_model=None, tags=["compatibility"])
async def health(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> dict[str, Any] | Response:
    """The original system's health check; the same answer as /readyz."""
    return await _readiness(request, svc)
