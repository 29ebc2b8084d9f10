"""Triage claims: one row per incident, leased to one worker at a time.

A claim inserts the row (or takes over one whose lease ran out); completing it checks the
worker's token in the same transaction that stores the decision, so a worker that lost its
lease stores nothing and an incident gets exactly one triage decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dragon.domain.entities import TriageRun
from dragon.domain.enums import IncidentStatus, TriageStatus
from dragon.store.repositories import SessionRepository
from dragon.store.tables import incidents, triage_runs


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class SqlTriageRepository(SessionRepository):
    async def pending(self, *, now: datetime, limit: int, max_attempts: int) -> list[str]:
        t = triage_runs.c
        due = sa.and_(
            t.status == TriageStatus.RUNNING.value,
            t.lease_until <= now,
            t.attempts < max_attempts,
        )
        stmt = (
            sa.select(incidents.c.id)
            .select_from(incidents.outerjoin(triage_runs, t.incident_id == incidents.c.id))
            .where(incidents.c.status != IncidentStatus.RESOLVED.value)
            .where(sa.or_(t.incident_id.is_(None), due))
            .order_by(incidents.c.id)
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))

    async def claim(
        self,
        incident_id: str,
        *,
        token: str,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
    ) -> bool:
        t = triage_runs.c
        inserted = await self.session.execute(
            self._insert(triage_runs)
            .values(
                incident_id=incident_id,
                status=TriageStatus.RUNNING.value,
                token=token,
                attempts=1,
                lease_until=lease_until,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[t.incident_id])
        )
        if _rowcount(inserted) == 1:
            return True
        taken = await self.session.execute(
            sa.update(triage_runs)
            .where(
                t.incident_id == incident_id,
                t.status == TriageStatus.RUNNING.value,
                t.lease_until <= now,
                t.attempts < max_attempts,
            )
            .values(token=token, attempts=t.attempts + 1, lease_until=lease_until, updated_at=now)
        )
        return _rowcount(taken) == 1

    async def complete(
        self, incident_id: str, *, token: str, decision_id: str, now: datetime
    ) -> bool:
        t = triage_runs.c
        done = await self.session.execute(
            sa.update(triage_runs)
            .where(
                t.incident_id == incident_id,
                t.token == token,
                t.status == TriageStatus.RUNNING.value,
            )
            .values(
                status=TriageStatus.DONE.value,
                decision_id=decision_id,
                last_error=None,
                updated_at=now,
            )
        )
        return _rowcount(done) == 1

    async def release(
        self,
        incident_id: str,
        *,
        token: str,
        error: str,
        retry_at: datetime,
        give_up: bool,
        now: datetime,
    ) -> None:
        t = triage_runs.c
        await self.session.execute(
            sa.update(triage_runs)
            .where(
                t.incident_id == incident_id,
                t.token == token,
                t.status == TriageStatus.RUNNING.value,
            )
            .values(
                status=(TriageStatus.FAILED if give_up else TriageStatus.RUNNING).value,
                lease_until=retry_at,
                last_error=error[:2000],
                updated_at=now,
            )
        )

    async def get(self, incident_id: str) -> TriageRun | None:
        return await self.session.get(TriageRun, incident_id, populate_existing=True)
