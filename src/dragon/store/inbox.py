"""Repositories for the inbox (deliveries), signals and incident correlation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dragon.domain.entities import Delivery, Incident, IncidentLink, Signal
from dragon.domain.enums import DeliveryStatus, IncidentStatus
from dragon.domain.ports import DeliveryQuery
from dragon.store.database import Database, unavailable, unavailable_cause
from dragon.store.repositories import SessionRepository, insert_ignoring_conflicts, keyset_page
from dragon.store.tables import deliveries, incident_links, signals


class SqlDeliveryRepository(SessionRepository):
    async def get(self, delivery_id: str, *, for_update: bool = False) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id, with_for_update=for_update)

    async def claim_due(self, *, now: datetime, limit: int) -> list[Delivery]:
        entity: Any = Delivery
        stmt = (
            sa.select(Delivery)
            .where(entity.status == DeliveryStatus.PENDING, entity.next_attempt_at <= now)
            .order_by(entity.next_attempt_at, entity.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def claim(self, delivery_id: str) -> Delivery | None:
        entity: Any = Delivery
        stmt = (
            sa.select(Delivery)
            .where(entity.id == delivery_id, entity.status == DeliveryStatus.PENDING)
            .with_for_update(skip_locked=True)
        )
        return await self.session.scalar(stmt)

    async def find(self, query: DeliveryQuery) -> tuple[list[Delivery], str | None]:
        entity: Any = Delivery
        stmt = sa.select(Delivery)
        if query.status:
            stmt = stmt.where(entity.status == query.status)
        if query.source:
            stmt = stmt.where(entity.source == query.source)
        return await keyset_page(self.session, stmt, entity.id, query.page)


class SqlSignalRepository(SessionRepository):
    async def add_if_new(self, signal: Signal) -> bool:
        values = {c.name: getattr(signal, c.name) for c in signals.columns}
        inserted = await self.session.execute(
            self._insert(signals)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["source", "signal_key"])
            .returning(signals.c.id)
        )
        return inserted.first() is not None

    async def attach(self, signal_id: str, incident_id: str) -> None:
        await self.session.execute(
            sa.update(signals).where(signals.c.id == signal_id).values(incident_id=incident_id)
        )

    async def for_incident(self, incident_id: str, *, limit: int) -> list[Signal]:
        entity: Any = Signal
        stmt = (
            sa.select(Signal)
            .where(entity.incident_id == incident_id)
            .order_by(entity.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))


class SqlCorrelationRepository(SessionRepository):
    async def lock_fingerprint(self, fingerprint: str) -> None:
        # SQLite serialises writers already; PostgreSQL takes a transaction-scoped advisory lock.
        if self.session.get_bind().dialect.name == "postgresql":
            key = int.from_bytes(
                hashlib.sha256(fingerprint.encode()).digest()[:8], "big", signed=True
            )
            await self.session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    async def open_incident(self, fingerprint: str) -> Incident | None:
        entity: Any = Incident
        stmt = (
            sa.select(Incident)
            .where(entity.fingerprint == fingerprint, entity.status != IncidentStatus.RESOLVED)
            .with_for_update()
        )
        return await self.session.scalar(stmt)

    async def last_resolved(self, fingerprint: str) -> Incident | None:
        entity: Any = Incident
        stmt = (
            sa.select(Incident)
            .where(entity.fingerprint == fingerprint, entity.status == IncidentStatus.RESOLVED)
            .order_by(entity.id.desc())
            .limit(1)
        )
        return await self.session.scalar(stmt)

    async def incidents_with_commit(self, commit_sha: str, *, exclude: str) -> list[Incident]:
        entity: Any = Incident
        stmt = (
            sa.select(Incident)
            .where(entity.commit_sha == commit_sha, entity.id != exclude)
            .order_by(entity.id.desc())
            .limit(20)
        )
        return list(await self.session.scalars(stmt))

    async def link(self, link: IncidentLink) -> None:
        await self.session.execute(
            self._insert(incident_links)
            .values(
                incident_id=link.incident_id,
                linked_id=link.linked_id,
                reason=link.reason,
                created_at=link.created_at,
            )
            .on_conflict_do_nothing()
        )

    async def links_of(self, incident_id: str) -> list[IncidentLink]:
        entity: Any = IncidentLink
        stmt = sa.select(IncidentLink).where(entity.incident_id == incident_id)
        return list(await self.session.scalars(stmt))


class GroupCommitInbox:
    """Stores accepted deliveries with group commit.

    Each accept waits for its delivery to be committed before Dragon answers (the inbox's
    durability guarantee). Rather than one transaction each, concurrent accepts queue here and
    one writer task stores a whole batch with one multi-row insert and one commit, then wakes
    every waiter: under load, one disk sync serves many deliveries.
    """

    def __init__(self, database: Database, *, max_batch: int = 500) -> None:
        self._sessions = database.sessions(write=True)
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[Delivery | None]]] = (
            asyncio.Queue()
        )
        self._writer: asyncio.Task[None] | None = None

    async def add(self, delivery: Delivery) -> Delivery | None:
        """Store `delivery` unless its (source, key) exists; returns the existing one if so.
        Returns only once the outcome is committed."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        done: asyncio.Future[Delivery | None] = asyncio.get_running_loop().create_future()
        await self._queue.put((delivery, done))
        return await done

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await self._store(batch)
            except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
                failure: Exception = unavailable() if unavailable_cause(exc) else exc
                for _, done in batch:
                    if not done.done():
                        done.set_exception(failure)
                continue
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if not done.done():
                    done.set_result(outcome)

    async def _store(
        self, batch: list[tuple[Delivery, asyncio.Future[Delivery | None]]]
    ) -> list[Delivery | None]:
        async with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            rows = [{c.name: getattr(d, c.name) for c in deliveries.columns} for d, _ in batch]
            inserted = await session.execute(
                insert_ignoring_conflicts(dialect, deliveries)
                .on_conflict_do_nothing(index_elements=["source", "delivery_key"])
                .returning(deliveries.c.id),
                rows,
            )
            new_ids = set(inserted.scalars().all())
            outcomes: list[Delivery | None] = []
            existing: dict[tuple[str, str], Delivery] = {}
            missing = [d for d, _ in batch if d.id not in new_ids]
            if missing:
                entity: Any = Delivery
                found = await session.scalars(
                    sa.select(Delivery).where(
                        sa.tuple_(entity.source, entity.delivery_key).in_(
                            [(d.source, d.delivery_key) for d in missing]
                        )
                    )
                )
                existing = {(d.source, d.delivery_key): d for d in found}
            await session.commit()
        for delivery, _ in batch:
            outcomes.append(
                None
                if delivery.id in new_ids
                else existing[(delivery.source, delivery.delivery_key)]
            )
        return outcomes
