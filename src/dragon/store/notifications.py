"""The notification outbox and its per-channel deliveries."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dragon.domain.entities import Decision, Notification, NotificationEvent
from dragon.domain.enums import DecisionStatus, NotificationStatus
from dragon.domain.ports import NotificationQuery
from dragon.store.repositories import SessionRepository, keyset_page
from dragon.store.tables import notification_events


class SqlNotificationRepository(SessionRepository):
    async def add_event(self, event: NotificationEvent) -> None:
        # Added without a flush: it is written with the transaction's other changes at commit,
        # so a state change pays no extra round trip for its notification.
        self.session.add(event)

    async def claim_unrouted(self, *, limit: int) -> list[NotificationEvent]:
        entity: Any = NotificationEvent
        stmt = (
            sa.select(NotificationEvent)
            .where(entity.routed_at.is_(None))
            .order_by(entity.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def mark_routed(self, event_ids: Collection[str], *, now: datetime) -> None:
        if not event_ids:
            return
        # One statement for the pass: set on each loaded event, the flush wrote one UPDATE
        # per event (a statement each on the server).
        await self.session.execute(
            sa.update(notification_events)
            .where(notification_events.c.id.in_(list(event_ids)))
            .values(routed_at=now)
            .execution_options(synchronize_session=False)
        )

    async def add(self, notification: Notification) -> None:
        await self._add(notification)

    async def get(self, notification_id: str, *, for_update: bool = False) -> Notification | None:
        return await self.session.get(Notification, notification_id, with_for_update=for_update)

    async def claim_due(self, *, now: datetime, limit: int) -> list[Notification]:
        entity: Any = Notification
        stmt = (
            sa.select(Notification)
            .where(entity.status == NotificationStatus.PENDING, entity.next_attempt_at <= now)
            .order_by(entity.next_attempt_at, entity.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def last_sent(self, *, incident_id: str, channel: str) -> Notification | None:
        entity: Any = Notification
        stmt = (
            sa.select(Notification)
            .where(
                entity.incident_id == incident_id,
                entity.channel == channel,
                entity.status.in_([NotificationStatus.SENT, NotificationStatus.PENDING]),
            )
            .order_by(entity.id.desc())
            .limit(1)
        )
        return (await self.session.scalars(stmt)).first()

    async def thread_of(
        self, *, incident_id: str | None, decision_id: str | None, channel: str
    ) -> str | None:
        entity: Any = Notification
        if incident_id:
            about = entity.incident_id == incident_id
        elif decision_id:
            about = sa.and_(entity.incident_id.is_(None), entity.decision_id == decision_id)
        else:
            return None
        stmt = (
            sa.select(entity.external_ref)
            .where(about, entity.channel == channel, entity.external_ref.is_not(None))
            .order_by(entity.id)
            .limit(1)
        )
        found: str | None = await self.session.scalar(stmt)
        return found

    async def event_of(self, event_id: str) -> NotificationEvent | None:
        return await self.session.get(NotificationEvent, event_id)

    async def has_event(self, *, decision_id: str, event: str) -> bool:
        entity: Any = NotificationEvent
        stmt = (
            sa.select(entity.id)
            .where(entity.decision_id == decision_id, entity.event == event)
            .limit(1)
        )
        return await self.session.scalar(stmt) is not None

    async def pending_expiring(self, *, before: datetime, limit: int) -> list[Decision]:
        entity: Any = Decision
        stmt = (
            sa.select(Decision)
            .where(
                entity.status == DecisionStatus.PENDING_APPROVAL,
                entity.expires_at.is_not(None),
                entity.expires_at <= before,
            )
            .order_by(entity.expires_at, entity.id)
            .limit(limit)
            # Every worker's reminder pass runs this: a decision another pass holds is skipped,
            # and once that pass commits its reminder event, has_event() sees it.
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def find(self, query: NotificationQuery) -> tuple[list[Notification], str | None]:
        entity: Any = Notification
        stmt = sa.select(Notification)
        if query.status:
            stmt = stmt.where(entity.status == query.status)
        if query.incident_id:
            stmt = stmt.where(entity.incident_id == query.incident_id)
        if query.channel:
            stmt = stmt.where(entity.channel == query.channel)
        return await keyset_page(self.session, stmt, entity.id, query.page)
