"""The set of use cases one process serves, built by app.py or cli.py and handed to the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dragon.domain.breaker import BreakerRegistry
from dragon.domain.clock import Clock
from dragon.domain.errors import Unauthenticated
from dragon.domain.execution import ActionHandler
from dragon.domain.notification_routing import RoutingTable
from dragon.domain.notifications import ChatAction
from dragon.domain.ports import (
    ChatDirectory,
    DeliveryInbox,
    FailureAnalyzer,
    JobLogSource,
    LiveUpdates,
    NotificationChannel,
    StoreHealth,
    UnitOfWorkFactory,
    WebhookAdapter,
)
from dragon.domain.runbooks import NOTIFY
from dragon.domain.signals import Normalized, NormalizeOptions
from dragon.services.actions_switch import ActionsSwitchService
from dragon.services.audit_log import AuditLog
from dragon.services.auth import AuthService, JwtSettings
from dragon.services.chat_approvals import ChatApprovals
from dragon.services.dashboard import DashboardService
from dragon.services.decisions import DecisionService
from dragon.services.incidents import IncidentService
from dragon.services.ingest import IngestService
from dragon.services.live_updates import InProcessBroadcaster
from dragon.services.notifications import DeliveryRules, NotificationService
from dragon.services.outcomes import OutcomeService
from dragon.services.playground import Playground
from dragon.services.policies import PolicyService
from dragon.services.processing import DeliveryProcessor
from dragon.services.runbook_notify import NotifyStep
from dragon.services.runbooks import RUN_RUNBOOK, RunbookHandler, RunbookService
from dragon.services.runs import ExecutionSettings, RunService
from dragon.services.triage import BuiltinAnalyzer, TriageService, TriageSettings


@dataclass(frozen=True)
class InboxSettings:
    """What ingestion needs from the wiring: the vendor adapters and their secrets."""

    adapters: Mapping[str, WebhookAdapter]
    secrets: Mapping[str, Sequence[str]]
    event_normalizer: Callable[..., Normalized]
    options: NormalizeOptions = field(default_factory=NormalizeOptions)
    max_attempts: int = 5


class _NoDirectory:
    async def email_of(self, user_id: str) -> str | None:
        return None

    async def tell(self, *, channel: str | None, user_id: str, text: str) -> None:
        return None


def _refuse_chat(**_: Any) -> None:
    raise Unauthenticated("chat interactivity is not configured", code="slack_signature_invalid")


@dataclass(frozen=True)
class NotifySettings:
    """What notifications need from the wiring: routes, channel adapters, the chat workspace,
    and how to verify and read the chat platform's button requests."""

    routing: RoutingTable = field(default_factory=RoutingTable)
    channels: Mapping[str, NotificationChannel] = field(default_factory=dict)
    rules: DeliveryRules = field(default_factory=DeliveryRules)
    directory: ChatDirectory = field(default_factory=_NoDirectory)
    verify_chat: Callable[..., None] = _refuse_chat
    parse_chat: Callable[[bytes], ChatAction] | None = None
    close: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class ExecutionWiring:
    """What execution needs from the wiring: a handler per executable action, and limits."""

    handlers: Mapping[str, ActionHandler] = field(default_factory=dict)
    # Runbook-only steps (http_call; notify is the outbox's); runbooks may also use every
    # handler above.
    runbook_steps: Mapping[str, ActionHandler] = field(default_factory=dict)
    settings: ExecutionSettings = field(default_factory=ExecutionSettings)
    actions_enabled: bool = True
    dry_run: bool = False
    closers: Sequence[Callable[[], Awaitable[None]]] = ()


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
    triage: TriageService
    breakers: BreakerRegistry
    dashboard: DashboardService
    live: LiveUpdates
    playground: Playground
    runs: RunService
    actions: ActionsSwitchService
    runbooks: RunbookService
    outcomes: OutcomeService
    notifications: NotificationService
    chat: ChatApprovals
    notify: NotifySettings

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
        triage: TriageSettings | None = None,
        analyzer: FailureAnalyzer | None = None,
        job_logs: JobLogSource | None = None,
        breakers: BreakerRegistry | None = None,
        execution: ExecutionWiring | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
        notify: NotifySettings | None = None,
    ) -> Services:
        policies = PolicyService(uow, clock=clock)
        notify = notify or NotifySettings()
        decisions = DecisionService(uow, policies=policies, clock=clock)
        execution = execution or ExecutionWiring()
        handlers = dict(execution.handlers)
        handlers[RUN_RUNBOOK] = RunbookHandler(
            uow,
            steps={
                **execution.handlers,
                **execution.runbook_steps,
                NOTIFY: NotifyStep(uow, clock=clock),
            },
        )
        actions = ActionsSwitchService(
            uow,
            clock=clock,
            setting_enabled=execution.actions_enabled,
            dry_run=execution.dry_run,
        )
        return cls(
            runs=RunService(
                uow,
                policies=policies,
                switch=actions,
                handlers=handlers,
                clock=clock,
                settings=execution.settings,
                closers=execution.closers,
            ),
            actions=actions,
            runbooks=RunbookService(uow, decisions=decisions, clock=clock),
            outcomes=OutcomeService(uow, decisions=decisions, clock=clock),
            notifications=NotificationService(
                uow,
                routing=notify.routing,
                channels=notify.channels,
                clock=clock,
                rules=notify.rules,
                close=notify.close,
            ),
            chat=ChatApprovals(uow, decisions=decisions, directory=notify.directory, clock=clock),
            notify=notify,
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
            decisions=decisions,
            triage=TriageService(
                uow,
                decisions=decisions,
                analyzer=analyzer or BuiltinAnalyzer(),
                clock=clock,
                settings=triage or TriageSettings(),
                logs=job_logs,
                closers=closers,
            ),
            policies=policies,
            audit=AuditLog(uow),
            health=health,
            breakers=breakers or BreakerRegistry(clock=clock),
            dashboard=DashboardService(uow, clock=clock),
            live=InProcessBroadcaster(),
            playground=Playground(clock=clock),
        )
