"""The ports services use to reach storage. The store implements them; services see only these."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from dragon.domain.entities import (
    ApiKey,
    Approval,
    AuditEvent,
    Decision,
    Incident,
    PolicyVersion,
    Principal,
)
from dragon.domain.enums import DecisionStatus, IncidentStatus, Severity


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
    async def add(self, incident: Incident) -> None: ...
    async def get(self, incident_id: str, *, for_update: bool = False) -> Incident | None: ...
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
    async def count(self) -> int: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...
    async def get(self, key_id: str) -> ApiKey | None: ...
    async def by_hash(self, key_hash: str) -> ApiKey | None: ...
    async def all(self) -> list[ApiKey]: ...


class PolicyRepository(Protocol):
    async def active(self) -> PolicyVersion | None: ...
    async def add(self, policy: PolicyVersion) -> None: ...
    async def deactivate_all(self) -> None: ...
    async def history(self, *, limit: int) -> list[PolicyVersion]: ...


class AuditRepository(Protocol):
    async def append(self, event: NewAuditEvent) -> None:
        """Queue an event; the unit of work chains and stores queued events at commit."""
        ...

    async def find(self, query: AuditQuery) -> list[AuditEvent]: ...
    def stream(self) -> AsyncIterator[AuditEvent]: ...
    async def head(self) -> tuple[int, str]: ...


class UnitOfWork(Protocol):
    """One transaction. Repositories flush; only `commit` makes their writes durable."""

    incidents: IncidentRepository
    decisions: DecisionRepository
    approvals: ApprovalRepository
    principals: PrincipalRepository
    api_keys: ApiKeyRepository
    policies: PolicyRepository
    audit: AuditRepository

    async def commit(self) -> None: ...
    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> UnitOfWork: ...


class StoreHealth(Protocol):
    async def check(self) -> dict[str, str]:
        """Named checks, each "ok" or a short reason; raises nothing."""
        ...
