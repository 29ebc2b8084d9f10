"""The set of use cases one process serves, built by app.py or cli.py and handed to the API."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dragon.domain.breaker import BreakerRegistry
from dragon.domain.clock import Clock
from dragon.domain.ports import (
    DeliveryInbox,
    LiveUpdates,
    StoreHealth,
    UnitOfWorkFactory,
    WebhookAdapter,
)
from dragon.domain.signals import Normalized, NormalizeOptions
from dragon.services.audit_log import AuditLog
from dragon.services.auth import AuthService, JwtSettings
from dragon.services.dashboard import DashboardService
from dragon.services.decisions import DecisionService
from dragon.services.incidents import IncidentService
from dragon.services.ingest import IngestService
from dragon.services.live_updates import InProcessBroadcaster
from dragon.services.playground import Playground
from dragon.services.policies import PolicyService
from dragon.services.processing import DeliveryProcessor


@dataclass(frozen=True)
class InboxSettings:
    """What ingestion needs from the wiring: the vendor adapters and their secrets."""

    adapters: Mapping[str, WebhookAdapter]
    secrets: Mapping[str, Sequence[str]]
    event_normalizer: Callable[..., Normalized]
    options: NormalizeOptions = field(default_factory=NormalizeOptions)
    max_attempts: int = 5


@dataclass(frozen=True)
class Services:
    auth: AuthService
    incidents: IncidentService
    decisions: DecisionService
    policies: PolicyService
    audit: AuditLog
    health: StoreHealth
    ingest: IngestService
    processor: DeliveryProcessor
    breakers: BreakerRegistry
    dashboard: DashboardService
    live: LiveUpdates
    playground: Playground

    @classmethod
    def build(
        cls,
        uow: UnitOfWorkFactory,
        *,
        health: StoreHealth,
        clock: Clock,
        jwt: JwtSettings,
        inbox: InboxSettings,
        delivery_inbox: DeliveryInbox,
    ) -> Services:
        policies = PolicyService(uow, clock=clock)
        return cls(
            ingest=IngestService(
                uow,
                inbox=delivery_inbox,
                adapters=inbox.adapters,
                secrets=inbox.secrets,
                options=inbox.options,
                clock=clock,
            ),
            processor=DeliveryProcessor(
                uow,
                adapters=inbox.adapters,
                event_normalizer=inbox.event_normalizer,
                options=inbox.options,
                clock=clock,
                max_attempts=inbox.max_attempts,
            ),
            auth=AuthService(uow, clock=clock, jwt_settings=jwt),
            incidents=IncidentService(uow, clock=clock),
            decisions=DecisionService(uow, policies=policies, clock=clock),
            policies=policies,
            audit=AuditLog(uow),
            health=health,
            breakers=BreakerRegistry(clock=clock),
            dashboard=DashboardService(uow, clock=clock),
            live=InProcessBroadcaster(),
            playground=Playground(clock=clock),
        )
