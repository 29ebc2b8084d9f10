"""The ports services use to reach storage. The store implements them; services see only these."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from dragon.domain.dashboard import DecisionSummary, IncidentSummary
from dragon.domain.entities import (
    ActionsSwitch,
    ApiKey,
    Approval,
    AuditEvent,
    Decision,
    Delivery,
    Incident,
    IncidentLink,
    Notification,
    NotificationEvent,
    PolicyVersion,
    Principal,
    Run,
    Runbook,
    Signal,
    TriageClaim,
    TriageRun,
)
from dragon.domain.enums import (
    DecisionStatus,
    DeliveryStatus,
    IncidentStatus,
    NotificationStatus,
    RunStatus,
    Severity,
)
from dragon.domain.notifications import Notice
from dragon.domain.signals import Normalized, NormalizeOptions
from dragon.domain.triage import Analysis, TriageContext


@dataclass(frozen=True)
class Page:
    """Keyset pagination: newest first; `after` is an opaque cursor from a previous page."""

    limit: int = 50
    after: str | None = None


@dataclass(frozen=True)
class IncidentQuery:
    status: IncidentStatus | None = None
    severity: Severity | None = None
    source: str | None = None
    repo: str | None = None
    text: str | None = None
    page: Page = Page()


@dataclass(frozen=True)
class DecisionQuery:
    status: DecisionStatus | None = None
    incident_id: str | None = None
    action: str | None = None
    page: Page = Page()


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None
    actor_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class NewAuditEvent:
    occurred_at: datetime
    actor_id: str
    actor_name: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    correlation_id: str | None
    client_address: str | None


class IncidentRepository(Protocol):
    async def add(self, incident: Incident, *, triage: TriageClaim | None = None) -> None:
        """Add the incident with its triage row: waiting for a claim, or claimed by `triage`."""
        ...

    async def get(self, incident_id: str, *, for_update: bool = False) -> Incident | None: ...
    async def get_many(self, incident_ids: Collection[str]) -> list[Incident]: ...
    async def find(self, query: IncidentQuery) -> tuple[list[Incident], str | None]: ...


class DecisionRepository(Protocol):
    async def add(self, decision: Decision) -> None: ...
    async def get(self, decision_id: str, *, for_update: bool = False) -> Decision | None: ...
    async def find(self, query: DecisionQuery) -> tuple[list[Decision], str | None]: ...
    async def overdue(self, *, now: datetime, limit: int) -> list[Decision]: ...


class ApprovalRepository(Protocol):
    async def add(self, approval: Approval) -> None: ...
    async def for_decision(self, decision_id: str) -> list[Approval]: ...


class PrincipalRepository(Protocol):
    async def add(self, principal: Principal) -> None: ...
    async def get(self, principal_id: str) -> Principal | None: ...
    async def by_name(self, name: str) -> Principal | None: ...
    async def by_email(self, email: str) -> Principal | None: ...
    async def count(self) -> int: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...
    async def get(self, key_id: str) -> ApiKey | None: ...
    async def by_hash(self, key_hash: str) -> ApiKey | None: ...
    async def all(self) -> list[ApiKey]: ...


class PolicyRepository(Protocol):
    async def active(self) -> PolicyVersion | None: ...
    async def active_version(self) -> str | None:
        """The active policy's version hash alone: proposals read it, then their parsed copy."""
        ...

    async def add(self, policy: PolicyVersion) -> None: ...
    async def deactivate_all(self) -> None: ...
    async def history(self, *, limit: int) -> list[PolicyVersion]: ...
    async def by_version(self, version: str) -> PolicyVersion | None: ...


class AuditRepository(Protocol):
    async def append(self, event: NewAuditEvent) -> None:
        """Queue an event; the unit of work chains and stores queued events at commit."""
        ...

    async def find(self, query: AuditQuery) -> list[AuditEvent]: ...
    def stream(self) -> AsyncIterator[AuditEvent]: ...
    async def head(self) -> tuple[int, str]: ...


@dataclass(frozen=True)
class DeliveryQuery:
    status: DeliveryStatus | None = None
    source: str | None = None
    page: Page = Page()


class DeliveryRepository(Protocol):
    async def get(self, delivery_id: str, *, for_update: bool = False) -> Delivery | None: ...
    async def claim_due(self, *, now: datetime, limit: int) -> list[Delivery]:
        """Lock up to `limit` due pending deliveries, oldest first, skipping rows another
        worker holds."""
        ...

    async def claim_many(self, delivery_ids: Sequence[str], *, now: datetime) -> list[Delivery]:
        """Lock those of `delivery_ids` that are pending and due, skipping rows another
        worker holds."""
        ...

    async def claim(self, delivery_id: str) -> Delivery | None:
        """Lock a pending delivery for processing; None if it is gone, settled or locked."""
        ...

    async def find(self, query: DeliveryQuery) -> tuple[list[Delivery], str | None]: ...

    async def schedule(self, delivery_ids: Sequence[str]) -> None:
        """Have the job engine process these pending deliveries now, in this transaction;
        a no-op where the worker polls the inbox instead."""
        ...

    async def await_scheduled(self) -> None:
        """Wait until every transaction that scheduled deliveries onto a job already waiting
        has ended, so a job that reads the inbox after this transaction sees them all
        (docs/decisions/0022); a no-op where the worker polls the inbox instead."""
        ...


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery as accepted, before the inbox stores it: a plain value, cheap to make on
    the hot path. `ignored` (a reason) stores it as settled; otherwise it is pending."""

    id: str
    source: str
    delivery_key: str
    event_type: str
    body: bytes
    headers: Mapping[str, str]
    received_at: datetime
    ignored: str | None = None


class DeliveryInbox(Protocol):
    """Where accepted deliveries are committed before Dragon answers their sender."""

    async def add(self, delivery: NewDelivery) -> Delivery | None:
        """Commit `delivery` unless (source, delivery_key) exists; returns the existing one."""
        ...

    async def close(self) -> None: ...


class SignalRepository(Protocol):
    async def known(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (source, signal key) pairs are stored already."""
        ...

    async def add(self, signal: Signal) -> None:
        """Store a signal `known` said is new (written with the transaction's next flush)."""
        ...

    async def for_incident(self, incident_id: str, *, limit: int) -> list[Signal]: ...
    async def latest_for(
        self, incident_ids: Collection[str], *, limit: int
    ) -> dict[str, list[Signal]]:
        """Each incident's newest `limit` signals, newest first."""
        ...


class CorrelationRepository(Protocol):
    async def lock_fingerprints(self, fingerprints: Collection[str]) -> None:
        """Serialise correlation per fingerprint across workers until the transaction ends;
        all of them at once, always in the same order, so two transactions never deadlock."""
        ...

    async def prefetch(
        self, *, fingerprints: Collection[str], commit_shas: Collection[str]
    ) -> None:
        """Read ahead, in a few statements, what the first `open_incident`, `last_resolved`
        and `incidents_with_commit` of each of these will ask; each answer serves once (a
        batch's later lookups, after its own changes, ask the store)."""
        ...

    async def open_incident(self, fingerprint: str) -> Incident | None: ...
    async def last_resolved(self, fingerprint: str) -> Incident | None: ...
    async def incidents_with_commit(self, commit_sha: str, *, exclude: str) -> list[Incident]: ...
    async def link(self, link: IncidentLink) -> None: ...
    async def links_of(self, incident_id: str) -> list[IncidentLink]: ...


class DashboardRepository(Protocol):
    """The aggregates the dashboard's figures are made of (domain/dashboard.py)."""

    async def open_incident_counts(self) -> list[tuple[str, str, int]]:
        """(severity, source, count) of incidents not resolved."""
        ...

    async def incident_summary(self, *, since: datetime, days_since: datetime) -> IncidentSummary:
        """Means over incidents created since `since`; per-day counts from `days_since`."""
        ...

    async def decision_summary(self, *, since: datetime) -> DecisionSummary: ...


@dataclass(frozen=True)
class LiveEvent:
    topic: str
    data: dict[str, Any]


class LiveUpdates(Protocol):
    """Publish/subscribe for the console's live views (in-process now; Redis across replicas)."""

    last: dict[str, LiveEvent]

    @property
    def subscribers(self) -> int:
        """How many streams of this process are subscribed now."""
        ...

    async def publish(self, event: LiveEvent) -> None: ...
    def subscribe(self) -> AbstractAsyncContextManager[asyncio.Queue[LiveEvent]]: ...
    def close(self) -> None:
        """Shutting down: subscribers receive a `closing` event and should end."""
        ...


class WebhookAdapter(Protocol):
    """One vendor's webhook: who may send it, how it is deduplicated, what it means.
    Each module in dragon.integrations implements it; app.py hands them to the services."""

    SOURCE: str

    def authenticate(
        self, *, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
    ) -> None: ...

    def delivery_key(self, *, headers: Mapping[str, str], payload: Any, body: bytes) -> str: ...

    def classify(self, *, headers: Mapping[str, str], payload: Any) -> Normalized:
        """The event type, or why it is ignored, from cheap top-level checks: the accept
        path's share of normalization (the rest runs in the worker)."""
        ...

    def normalize(
        self, *, headers: Mapping[str, str], payload: Any, options: NormalizeOptions
    ) -> Normalized: ...


class TriageRepository(Protocol):
    """Claims on incidents' triage. Each returns whether this worker's token won."""

    async def pending(self, *, now: datetime, limit: int, max_attempts: int) -> list[str]:
        """Unresolved incidents whose triage is pending, or due for a retry."""
        ...

    async def claim(
        self,
        incident_id: str,
        *,
        token: str,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
    ) -> bool: ...

    async def claim_many(
        self,
        incident_ids: Collection[str],
        *,
        token: str,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
    ) -> dict[str, int]:
        """Claim what can be claimed of `incident_ids` under one token: incident id → its
        attempt number, for those this worker won."""
        ...

    async def complete(
        self, incident_id: str, *, token: str, decision_id: str, now: datetime
    ) -> bool: ...

    async def hold(self, incident_ids: Collection[str], *, token: str, now: datetime) -> set[str]:
        """Lock the claims `token` still holds until the transaction ends; returns them."""
        ...

    async def complete_many(
        self, decided: Mapping[str, str], *, token: str, now: datetime
    ) -> set[str]:
        """Mark done the claims (incident id → decision id) `token` still holds; returns the
        incident ids of those it marked (a claim another worker took over is left alone)."""
        ...

    async def release(
        self,
        incident_id: str,
        *,
        token: str,
        error: str,
        retry_at: datetime,
        give_up: bool,
        now: datetime,
    ) -> None: ...

    async def get(self, incident_id: str) -> TriageRun | None: ...


class FailureAnalyzer(Protocol):
    """Reads a failure and proposes what to do; the built-in analyzer or an LLM."""

    async def analyze(self, text: str, context: TriageContext) -> Analysis: ...


class JobLogSource(Protocol):
    """The failed job's log from its CI vendor, tail only and bounded in size; None when the
    vendor is not configured or the signal does not name a job it can fetch."""

    async def job_log(self, signal: Signal) -> str | None: ...


@dataclass(frozen=True)
class RunQuery:
    status: RunStatus | None = None
    decision_id: str | None = None
    action: str | None = None
    page: Page = Page()


class RunRepository(Protocol):
    async def add_if_new(self, run: Run) -> bool:
        """Insert unless a run with the same idempotency key exists; True when inserted."""
        ...

    async def get(self, run_id: str, *, for_update: bool = False) -> Run | None: ...
    async def for_decision(self, decision_id: str) -> Run | None: ...
    async def find(self, query: RunQuery) -> tuple[list[Run], str | None]: ...
    async def claim_due(self, *, now: datetime, limit: int) -> list[Run]:
        """Lock queued runs that are due, and running ones whose lease expired (their worker
        died), skipping rows another worker holds."""
        ...

    async def unscheduled(self, *, actions: Sequence[str], limit: int) -> list[Decision]:
        """Runnable decisions for these actions that have no run yet, locked for scheduling."""
        ...

    async def lock_repo(self, repo: str) -> None:
        """Serialise blast-radius counting per repository until the transaction ends."""
        ...

    async def started_since(self, *, repo: str, since: datetime) -> int:
        """Runs (not dry runs) on `repo` that started at or after `since`."""
        ...

    async def prune(self, *, keep: int, older_than: datetime) -> int:
        """Delete finished runs beyond the newest `keep` that finished before `older_than`."""
        ...

    async def prunable(
        self, *, keep: int, older_than: datetime, limit: int
    ) -> tuple[int, list[Run]]:
        """How many runs `prune` would delete now, and the first `limit` of them, oldest first."""
        ...

    async def awaiting_outcome(self, *, limit: int) -> list[tuple[Run, str]]:
        """Succeeded runs (not dry runs) on an incident with a fingerprint whose outcome is not
        recorded yet, each with that fingerprint; locked."""
        ...

    async def next_ci_signal(self, fingerprint: str, *, after: datetime) -> Signal | None:
        """The first CI failure or recovery on `fingerprint` stored after `after`."""
        ...


class RunbookRepository(Protocol):
    async def add(self, runbook: Runbook) -> None: ...
    async def versions(self, name: str) -> list[Runbook]:
        """Every version of `name`, newest first."""
        ...

    async def get(self, name: str, version: str) -> Runbook | None: ...
    async def all_latest(self) -> list[Runbook]: ...


class SwitchRepository(Protocol):
    async def get(self, name: str) -> ActionsSwitch | None: ...
    async def put(self, switch: ActionsSwitch) -> None: ...


@dataclass(frozen=True)
class NotificationQuery:
    status: NotificationStatus | None = None
    incident_id: str | None = None
    channel: str | None = None
    page: Page = Page()


class NotificationRepository(Protocol):
    async def add_event(self, event: NotificationEvent) -> None: ...
    async def claim_unrouted(self, *, limit: int) -> list[NotificationEvent]:
        """Lock outbox events not routed yet, oldest first, skipping rows others hold."""
        ...

    async def mark_routed(self, event_ids: Collection[str], *, now: datetime) -> None:
        """Record that these (claimed) outbox events are routed, in one statement."""
        ...

    async def add(self, notification: Notification) -> None: ...
    async def get(
        self, notification_id: str, *, for_update: bool = False
    ) -> Notification | None: ...
    async def claim_due(self, *, now: datetime, limit: int) -> list[Notification]: ...
    async def last_sent(self, *, incident_id: str, channel: str) -> Notification | None: ...
    async def thread_of(
        self, *, incident_id: str | None, decision_id: str | None, channel: str
    ) -> str | None:
        """The channel's reference of the first message sent for the incident (or, without
        one, the decision): a Slack channel and ts."""
        ...

    async def event_of(self, event_id: str) -> NotificationEvent | None: ...
    async def has_event(self, *, decision_id: str, event: str) -> bool: ...
    async def pending_expiring(self, *, before: datetime, limit: int) -> list[Decision]: ...
    async def find(self, query: NotificationQuery) -> tuple[list[Notification], str | None]: ...


class NotificationChannel(Protocol):
    """One configured destination (a Slack channel, a Teams webhook, a mailbox, ...).
    Each module in dragon.integrations builds them; app.py hands them to the services."""

    name: str
    kind: str

    def target(self) -> str:
        """Where it delivers, fit to show: secrets masked."""
        ...

    def handles(self, event: str) -> bool: ...

    async def send(self, notice: Notice, *, thread: str | None) -> str | None:
        """Deliver; returns a reference for updating the message later (None if the channel
        has none). Raises ChannelFailed, retryable or not."""
        ...


class ChatDirectory(Protocol):
    """The chat workspace as approvals need it: who a user is, and a private reply."""

    async def email_of(self, user_id: str) -> str | None: ...
    async def tell(self, *, channel: str | None, user_id: str, text: str) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Repositories flush; only `commit` makes their writes durable."""

    incidents: IncidentRepository
    decisions: DecisionRepository
    approvals: ApprovalRepository
    principals: PrincipalRepository
    api_keys: ApiKeyRepository
    policies: PolicyRepository
    audit: AuditRepository
    deliveries: DeliveryRepository
    signals: SignalRepository
    correlation: CorrelationRepository
    dashboard: DashboardRepository
    triages: TriageRepository
    runs: RunRepository
    runbooks: RunbookRepository
    switches: SwitchRepository
    notifications: NotificationRepository

    async def commit(self) -> None: ...
    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, snapshot: bool = True) -> UnitOfWork:
        """A unit of work; `write=False` for a read, which sees one snapshot of the store
        unless `snapshot=False` says it is a single statement (and may skip the transaction)."""
        ...


class StoreHealth(Protocol):
    async def check(self) -> dict[str, str]:
        """Named checks, each "ok" or a short reason; raises nothing."""
        ...


@dataclass(frozen=True)
class StoredResponse:
    """An answer kept for an Idempotency-Key, replayed byte for byte to a repeated request."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class IdempotencyRecord:
    """What a key holds: the fingerprint of the request that first used it, and its answer
    (None while that first request is still running)."""

    fingerprint: str
    response: StoredResponse | None


class IdempotencyStore(Protocol):
    """Idempotency keys shared by every replica (Redis) or kept by one process (memory)."""

    async def claim(
        self, key: str, *, fingerprint: str, lease_seconds: float
    ) -> IdempotencyRecord | None:
        """Take the key for a first use (None: the caller runs the request), or return what
        the key already holds. A claim not completed within the lease lapses."""
        ...

    async def complete(self, key: str, *, record: IdempotencyRecord, ttl_seconds: int) -> None: ...
    async def release(self, key: str) -> None: ...
