"""Repositories implementing the domain's ports over one AsyncSession.

They add and flush; none of them commits. The unit of work owns the transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from dragon.domain.audit import GENESIS_HASH, event_hash
from dragon.domain.entities import (
    ApiKey,
    Approval,
    AuditEvent,
    Decision,
    Incident,
    PolicyVersion,
    Principal,
    TriageClaim,
    TriageRun,
)
from dragon.domain.enums import DecisionStatus, TriageStatus
from dragon.domain.ports import AuditQuery, DecisionQuery, IncidentQuery, NewAuditEvent, Page
from dragon.store.incident_search import IncidentTextSamples, Shares, text_condition
from dragon.store.tables import audit_events, audit_head, policy_versions

T = TypeVar("T")
_HEAD_ID = 1
_AUDIT_FIELDS = [field.name for field in dataclasses.fields(NewAuditEvent)]


async def keyset_page(
    session: AsyncSession, stmt: sa.Select[T], id_column: Any, page: Page
) -> tuple[list[T], str | None]:
    """Newest first by time-ordered id; fetch one extra row to know if there is a next page."""
    if page.after:
        stmt = stmt.where(id_column < page.after)
    rows = list(await session.scalars(stmt.order_by(id_column.desc()).limit(page.limit + 1)))
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        return rows, getattr(rows[-1], "id")  # noqa: B009 - T is any mapped entity with an id
    return rows, None


def insert_ignoring_conflicts(dialect: str, table: sa.Table) -> Any:
    """An INSERT that can take ON CONFLICT DO NOTHING, in the session's own dialect."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self, table: sa.Table) -> Any:
        return insert_ignoring_conflicts(self.session.get_bind().dialect.name, table)

    async def _add(self, entity: object) -> None:
        self.session.add(entity)
        await self.session.flush()


class SqlIncidentRepository(SessionRepository):
    def __init__(
        self, session: AsyncSession, *, text_samples: IncidentTextSamples | None = None
    ) -> None:
        super().__init__(session)
        self._unflushed: set[str] = set()
        # One per process (the unit-of-work factory's); without it the sample is read each time.
        self._text_samples = text_samples or IncidentTextSamples(seconds=0)

    async def add(self, incident: Incident, *, triage: TriageClaim | None = None) -> None:
        # Written at the next flush, with the rest of a batch's new incidents in one insert.
        self.session.add(incident)
        self._unflushed.add(incident.id)
        # Its triage waits from the moment it exists, in the same transaction (store.triage),
        # or is claimed already by the worker that will triage it next: the first attempt,
        # under that worker's token and lease, as a claim would have written it.
        self.session.add(
            TriageRun(
                incident_id=incident.id,
                status=TriageStatus.RUNNING if triage else TriageStatus.PENDING,
                token=triage.token if triage else "",
                attempts=1 if triage else 0,
                lease_until=triage.lease_until if triage else incident.created_at,
                created_at=incident.created_at,
                updated_at=incident.created_at,
            )
        )

    async def get(self, incident_id: str, *, for_update: bool = False) -> Incident | None:
        if incident_id in self._unflushed:
            self._unflushed.clear()
            await self.session.flush()  # one added unflushed in this transaction is found
        return await self.session.get(Incident, incident_id, with_for_update=for_update)

    async def get_many(self, incident_ids: Collection[str]) -> list[Incident]:
        """In one statement; later `get`s of these in the same transaction read no row."""
        if not incident_ids:
            return []
        entity: Any = Incident
        stmt = sa.select(Incident).where(entity.id.in_(list(incident_ids)))
        return list(await self.session.scalars(stmt))

    async def find(self, query: IncidentQuery) -> tuple[list[Incident], str | None]:
        entity: Any = Incident
        samples = None
        if query.text and self.session.get_bind().dialect.name == "postgresql":
            samples = await self._text_samples.read(self.session)
        ids = incident_page_ids(query, samples=samples)
        stmt = sa.select(Incident).where(entity.id.in_(ids.scalar_subquery()))
        rows = list(await self.session.scalars(stmt.order_by(entity.id.desc())))
        if len(rows) > query.page.limit:
            rows = rows[: query.page.limit]
            return rows, rows[-1].id
        return rows, None


def incident_page_ids(
    query: IncidentQuery, *, samples: Mapping[str, Shares] | None = None
) -> sa.Select[tuple[str]]:
    """The ids of one listing page (and one more, to know if there is a next), newest first.

    Selected apart from the rows, so they come from an index alone: ix_incidents_id_filters
    (PostgreSQL) holds every equality filter beside the id, and each (column, id) index one
    of them. When thousands of newer incidents do not match, their index entries are read,
    not their rows (migration 0010_pipeline_listing_indexes); the page's rows are then
    fetched by primary key. `samples` (PostgreSQL's, IncidentTextSamples) let a text search
    leave common words out of its trigram index conditions."""
    entity: Any = Incident
    conditions: list[Any] = [
        column == value
        for column, value in (
            (entity.status, query.status),
            (entity.severity, query.severity),
            (entity.source, query.source),
            (entity.repo, query.repo),
        )
        if value
    ]
    if query.text:
        samples = samples or {}
        conditions.append(
            sa.or_(
                text_condition(entity.title, query.text, samples.get("title")),
                text_condition(entity.description, query.text, samples.get("description")),
            )
        )
    if query.page.after:
        conditions.append(entity.id < query.page.after)
    return (
        sa.select(entity.id)
        .where(*conditions)
        .order_by(entity.id.desc())
        .limit(query.page.limit + 1)
    )


class SqlDecisionRepository(SessionRepository):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._unflushed: set[str] = set()

    async def add(self, decision: Decision) -> None:
        # Written at the next flush (any later statement of the transaction, or its commit),
        # so a batch of proposals is one insert.
        self.session.add(decision)
        self._unflushed.add(decision.id)

    async def get(self, decision_id: str, *, for_update: bool = False) -> Decision | None:
        if decision_id in self._unflushed:
            self._unflushed.clear()
            await self.session.flush()  # one added unflushed in this transaction is found
        return await self.session.get(Decision, decision_id, with_for_update=for_update)

    async def find(self, query: DecisionQuery) -> tuple[list[Decision], str | None]:
        entity: Any = Decision
        stmt = sa.select(Decision)
        if query.status:
            stmt = stmt.where(entity.status == query.status)
        if query.incident_id:
            stmt = stmt.where(entity.incident_id == query.incident_id)
        if query.action:
            stmt = stmt.where(entity.action == query.action)
        return await keyset_page(self.session, stmt, entity.id, query.page)

    async def overdue(self, *, now: datetime, limit: int) -> list[Decision]:
        entity: Any = Decision
        stmt = (
            sa.select(Decision)
            .where(entity.status == DecisionStatus.PENDING_APPROVAL, entity.expires_at <= now)
            .order_by(entity.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))


class SqlApprovalRepository(SessionRepository):
    async def add(self, approval: Approval) -> None:
        await self._add(approval)

    async def for_decision(self, decision_id: str) -> list[Approval]:
        entity: Any = Approval
        stmt = sa.select(Approval).where(entity.decision_id == decision_id).order_by(entity.id)
        return list(await self.session.scalars(stmt))


class SqlPrincipalRepository(SessionRepository):
    async def add(self, principal: Principal) -> None:
        await self._add(principal)

    async def get(self, principal_id: str) -> Principal | None:
        return await self.session.get(Principal, principal_id)

    async def by_name(self, name: str) -> Principal | None:
        entity: Any = Principal
        return await self.session.scalar(sa.select(Principal).where(entity.name == name))

    async def by_email(self, email: str) -> Principal | None:
        entity: Any = Principal
        stmt = sa.select(Principal).where(sa.func.lower(entity.email) == email.strip().lower())
        return (await self.session.scalars(stmt.order_by(entity.id).limit(1))).first()

    async def count(self) -> int:
        return int(
            await self.session.scalar(sa.select(sa.func.count()).select_from(Principal)) or 0
        )


class SqlApiKeyRepository(SessionRepository):
    async def add(self, key: ApiKey) -> None:
        await self._add(key)

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        entity: Any = ApiKey
        return await self.session.scalar(sa.select(ApiKey).where(entity.key_hash == key_hash))

    async def all(self) -> list[ApiKey]:
        entity: Any = ApiKey
        return list(await self.session.scalars(sa.select(ApiKey).order_by(entity.id)))


class SqlPolicyRepository(SessionRepository):
    async def active(self) -> PolicyVersion | None:
        entity: Any = PolicyVersion
        stmt = sa.select(PolicyVersion).where(entity.active.is_(True)).order_by(entity.id.desc())
        return await self.session.scalar(stmt.limit(1))

    async def active_version(self) -> str | None:
        # One column through Core: no entity (nor its YAML source) is loaded per proposal.
        stmt = (
            sa.select(policy_versions.c.version)
            .where(policy_versions.c.active.is_(True))
            .order_by(policy_versions.c.id.desc())
            .limit(1)
        )
        version: str | None = await self.session.scalar(stmt)
        return version

    async def add(self, policy: PolicyVersion) -> None:
        await self._add(policy)

    async def deactivate_all(self) -> None:
        entity: Any = PolicyVersion
        await self.session.execute(
            sa.update(PolicyVersion).where(entity.active.is_(True)).values(active=False)
        )

    async def history(self, *, limit: int) -> list[PolicyVersion]:
        entity: Any = PolicyVersion
        stmt = sa.select(PolicyVersion).order_by(entity.id.desc()).limit(limit)
        return list(await self.session.scalars(stmt))

    async def by_version(self, version: str) -> PolicyVersion | None:
        entity: Any = PolicyVersion
        stmt = sa.select(PolicyVersion).where(entity.version == version).limit(1)
        return await self.session.scalar(stmt)


class SqlAuditRepository(SessionRepository):
    async def head(self) -> tuple[int, str]:
        row = (await self.session.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).first()
        return (int(row.seq), str(row.hash)) if row else (0, GENESIS_HASH)

    async def _lock_head(self) -> tuple[int, str]:
        locked = (
            sa.select(audit_head.c.seq, audit_head.c.hash)
            .where(audit_head.c.id == _HEAD_ID)
            .with_for_update()
        )
        row = (await self.session.execute(locked)).first()
        if row is None:
            # The first append creates the head. Appends racing to be first must not fail on
            # the primary key: the losers' inserts wait for the winner's and do nothing, and
            # the lock taken next reads the winner's head.
            await self.session.execute(
                self._insert(audit_head)
                .values(id=_HEAD_ID, seq=0, hash=GENESIS_HASH)
                .on_conflict_do_nothing(index_elements=[audit_head.c.id])
            )
            row = (await self.session.execute(locked)).one()
        return int(row.seq), str(row.hash)

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._pending: list[NewAuditEvent] = []

    async def append(self, event: NewAuditEvent) -> None:
        """Queue an event; `write_pending` chains and stores the queue just before commit."""
        self._pending.append(event)

    async def write_pending(self) -> None:
        """Chain and store the queued events: one head lock, one insert, one head update.

        Taking the head lock at the end of the transaction keeps it held only for the commit,
        so concurrent transactions serialise on the chain for as short a time as possible."""
        if not self._pending:
            return
        head_seq, prev_hash = await self._lock_head()
        rows: list[dict[str, Any]] = []
        for seq, event in enumerate(self._pending, start=head_seq + 1):
            # Shallow: asdict's deep copy of every event's details cost more than the hash.
            fields = {name: getattr(event, name) for name in _AUDIT_FIELDS}
            digest = event_hash(seq=seq, prev_hash=prev_hash, **fields)
            rows.append({"seq": seq, "prev_hash": prev_hash, "hash": digest, **fields})
            prev_hash = digest
        await self.session.execute(sa.insert(audit_events), rows)
        await self.session.execute(
            sa.update(audit_head)
            .where(audit_head.c.id == _HEAD_ID)
            .values(seq=rows[-1]["seq"], hash=prev_hash)
        )
        self._pending.clear()

    async def find(self, query: AuditQuery) -> list[AuditEvent]:
        entity: Any = AuditEvent
        stmt = sa.select(AuditEvent)
        for column, value in (
            (entity.action, query.action),
            (entity.actor_id, query.actor_id),
            (entity.target_type, query.target_type),
            (entity.target_id, query.target_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if query.since:
            stmt = stmt.where(entity.occurred_at >= query.since)
        if query.until:
            stmt = stmt.where(entity.occurred_at < query.until)
        if query.after_seq is not None:
            stmt = stmt.where(entity.seq < query.after_seq)
        stmt = stmt.order_by(entity.seq.desc()).limit(query.limit)
        return list(await self.session.scalars(stmt))

    async def stream(self) -> AsyncIterator[AuditEvent]:
        entity: Any = AuditEvent
        result = await self.session.stream_scalars(
            sa.select(AuditEvent).order_by(entity.seq).execution_options(yield_per=500)
        )
        async for event in result:
            yield event
