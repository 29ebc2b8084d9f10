"""The dashboard's aggregates, computed by the database: counts, means and per-day buckets.

Times are subtracted in each dialect's own way (SQLite stores naive UTC text that `julianday`
reads; PostgreSQL subtracts timestamptz), so no row has to travel to Python.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from dragon.domain.dashboard import (
    UNSETTLED_BY_PEOPLE,
    WENT_AHEAD_ALONE,
    DecisionSummary,
    IncidentSummary,
)
from dragon.domain.enums import DecisionStatus, IncidentStatus
from dragon.store.tables import decisions, incidents


class SqlDashboardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    def _seconds(self, later: Any, earlier: Any) -> Any:
        if self.dialect == "postgresql":
            return sa.extract("epoch", later - earlier)
        return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0

    def _day(self, column: Any) -> Any:
        if self.dialect == "postgresql":
            return sa.func.date(sa.func.timezone("UTC", column))
        return sa.func.date(column)

    async def open_incident_counts(self) -> list[tuple[str, str, int]]:
        c = incidents.c
        stmt = (
            sa.select(c.severity, c.source, sa.func.count())
            .where(c.status != IncidentStatus.RESOLVED.value)
            .group_by(c.severity, c.source)
        )
        rows = await self.session.execute(stmt)
        return [(str(severity), str(source), int(n)) for severity, source, n in rows]

    async def incident_summary(self, *, since: datetime, days_since: datetime) -> IncidentSummary:
        c = incidents.c
        means = (
            await self.session.execute(
                sa.select(
                    sa.func.avg(self._seconds(c.acknowledged_at, c.created_at)),
                    sa.func.avg(self._seconds(c.resolved_at, c.created_at)),
                ).where(c.created_at >= since)
            )
        ).one()
        day = self._day(c.created_at)
        per_day = await self.session.execute(
            sa.select(day, sa.func.count()).where(c.created_at >= days_since).group_by(day)
        )
        return IncidentSummary(
            mtta_seconds=None if means[0] is None else float(means[0]),
            mttr_seconds=None if means[1] is None else float(means[1]),
            opened_per_day={_as_date(d): int(n) for d, n in per_day},
        )

    async def decision_summary(self, *, since: datetime) -> DecisionSummary:
        c = decisions.c
        alone = sa.and_(
            c.approvals_required == 0, c.status.in_([s.value for s in WENT_AHEAD_ALONE])
        )
        settled_by_people = sa.and_(
            c.approvals_required > 0,
            c.decided_at.is_not(None),
            c.status.not_in([s.value for s in UNSETTLED_BY_PEOPLE]),
        )
        row = (
            await self.session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count().filter(alone),
                    sa.func.count().filter(c.status == DecisionStatus.PENDING_APPROVAL.value),
                    sa.func.avg(self._seconds(c.decided_at, c.created_at)).filter(
                        settled_by_people
                    ),
                ).where(c.created_at >= since)
            )
        ).one()
        return DecisionSummary(
            total=int(row[0]),
            went_ahead_alone=int(row[1]),
            pending=int(row[2]),
            approval_latency_seconds=None if row[3] is None else float(row[3]),
        )


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
