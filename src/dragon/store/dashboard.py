"""The rows behind the dashboard: open incident counts and the window's incidents and decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dragon.domain.dashboard import DecisionTimes, IncidentTimes
from dragon.domain.entities import Decision, Incident
from dragon.domain.enums import IncidentStatus


class SqlDashboardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_incident_counts(self) -> list[tuple[str, str, int]]:
        entity: Any = Incident
        stmt = (
            sa.select(entity.severity, entity.source, sa.func.count())
            .where(entity.status != IncidentStatus.RESOLVED)
            .group_by(entity.severity, entity.source)
        )
        rows = await self.session.execute(stmt)
        return [(str(severity), str(source), int(n)) for severity, source, n in rows]

    async def incident_times(self, *, since: datetime) -> list[IncidentTimes]:
        entity: Any = Incident
        stmt = sa.select(entity.created_at, entity.acknowledged_at, entity.resolved_at).where(
            entity.created_at >= since
        )
        return [IncidentTimes(*row) for row in await self.session.execute(stmt)]

    async def decision_times(self, *, since: datetime) -> list[DecisionTimes]:
        entity: Any = Decision
        stmt = sa.select(
            entity.status, entity.approvals_required, entity.created_at, entity.decided_at
        ).where(entity.created_at >= since)
        return [DecisionTimes(*row) for row in await self.session.execute(stmt)]
