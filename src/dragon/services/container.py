"""The set of use cases one process serves, built by app.py or cli.py and handed to the API."""

from __future__ import annotations

from dataclasses import dataclass

from dragon.domain.clock import Clock
from dragon.domain.ports import StoreHealth, UnitOfWorkFactory
from dragon.services.audit_log import AuditLog
from dragon.services.auth import AuthService, JwtSettings
from dragon.services.decisions import DecisionService
from dragon.services.incidents import IncidentService
from dragon.services.policies import PolicyService


@dataclass(frozen=True)
class Services:
    auth: AuthService
    incidents: IncidentService
    decisions: DecisionService
    policies: PolicyService
    audit: AuditLog
    health: StoreHealth

    @classmethod
    def build(
        cls, uow: UnitOfWorkFactory, *, health: StoreHealth, clock: Clock, jwt: JwtSettings
    ) -> Services:
        policies = PolicyService(uow, clock=clock)
        return cls(
            auth=AuthService(uow, clock=clock, jwt_settings=jwt),
            incidents=IncidentService(uow, clock=clock),
            decisions=DecisionService(uow, policies=policies, clock=clock),
            policies=policies,
            audit=AuditLog(uow),
            health=health,
        )
