"""Triage claims: one row per incident, leased to one worker at a time.

The row is written, pending, with the incident itself (SqlIncidentRepository.add), so finding
the incidents waiting for triage reads an index range, never every incident. A claim takes
the pending row (or one whose lease ran out); completing it checks the
worker's token in the same transaction that stores the decision, so a worker that lost its
lease stores nothing and an incident gets exactly one triage decision.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dragon.domain.entities import TriageRun
from dragon.domain.enums import IncidentStatus, TriageStatus
from dragon.store.repositories import SessionRepository
from dragon.store.tables import incidents, triage_runs


def _first_attempt(*, token: str, lease_until: datetime, now: datetime) -> dict[str, Any]:
    """A triage row's columns when a worker claims it for its first attempt."""
    return {
        "status": TriageStatus.RUNNING.value,
        "token": token,
        "attempts": 1,
        "lease_until": lease_until,
        "updated_at": now,
    }


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class SqlTriageRepository(SessionRepository):
    async def pending(self, *, now: datetime, limit: int, max_attempts: int) -> list[str]:
        t = triage_runs.c
        # Every incident gets its pending row when it is stored (SqlIncidentRepository.add),
        # so this is a range of ix_triage_runs_status_lease_until however many incidents
        # there are: waiting ones, and claims whose lease ran out (a retry that came due, or
        # a worker that stopped: `claim` settles those past their last attempt as failed).
        stmt = (
            sa.select(t.incident_id)
            .select_from(triage_runs.join(incidents, incidents.c.id == t.incident_id))
            .where(
                t.status.in_([TriageStatus.PENDING.value, TriageStatus.RUNNING.value]),
                t.lease_until <= now,
                incidents.c.status != IncidentStatus.RESOLVED.value,
            )
            .order_by(t.lease_until, t.incident_id)
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
        first = await self.session.execute(
            sa.update(triage_runs)
            .where(t.incident_id == incident_id, t.status == TriageStatus.PENDING.value)
            .values(**_first_attempt(token=token, lease_until=lease_until, now=now))
        )
        if _rowcount(first) == 1:
            return True
        # An incident stored without its pending row (before migration 0009) is claimed by
        # inserting the row.
        inserted = await self.session.execute(
            self._insert(triage_runs)
            .values(
                incident_id=incident_id,
                created_at=now,
                **_first_attempt(token=token, lease_until=lease_until, now=now),
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
        if _rowcount(taken) == 1:
            return True
        await self.session.execute(
            sa.update(triage_runs)
            .where(
                t.incident_id == incident_id,
                t.status == TriageStatus.RUNNING.value,
                t.lease_until <= now,
                t.attempts >= max_attempts,
            )
            .values(
                status=TriageStatus.FAILED.value,
                last_error="the worker stopped during the last attempt",
                updated_at=now,
            )
        )
        return False

    async def claim_many(
        self,
        incident_ids: Collection[str],
        *,
        token: str,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
    ) -> dict[str, int]:
        """The pending ones in one statement (SKIP LOCKED: what another worker is claiming is
        left to it, and two batches never wait on each other); the rest, retries that came due
        and incidents stored without their row, one by one through `claim`."""
        if not incident_ids:
            return {}
        t = triage_runs.c
        pending = (
            sa.select(t.incident_id)
            .where(t.incident_id.in_(list(incident_ids)), t.status == TriageStatus.PENDING.value)
            .with_for_update(skip_locked=True)
        )
        first = await self.session.execute(
            sa.update(triage_runs)
            .where(t.incident_id.in_(pending.scalar_subquery()))
            .values(**_first_attempt(token=token, lease_until=lease_until, now=now))
            .returning(t.incident_id)
        )
        claimed = {str(incident_id): 1 for incident_id in first.scalars()}
        rest = [i for i in incident_ids if i not in claimed]
        if not rest:
            return claimed
        # Being claimed (a pending row the statement above skipped) or held by a live lease
        # elsewhere, or settled: not ours, and not worth a claim each.
        busy = set(
            await self.session.scalars(
                sa.select(t.incident_id).where(
                    t.incident_id.in_(rest),
                    sa.or_(
                        t.status != TriageStatus.RUNNING.value,
                        t.lease_until > now,
                    ),
                )
            )
        )
        for incident_id in rest:
            if incident_id in busy:
                continue
            if await self.claim(
                incident_id,
                token=token,
                now=now,
                lease_until=lease_until,
                max_attempts=max_attempts,
            ):
                run = await self.get(incident_id)
                claimed[incident_id] = run.attempts if run is not None else 1
        return claimed

    async def hold(self, incident_ids: Collection[str], *, token: str, now: datetime) -> set[str]:
        if not incident_ids:
            return set()
        t = triage_runs.c
        held = await self.session.execute(
            sa.update(triage_runs)
            .where(
                t.incident_id.in_(list(incident_ids)),
                t.token == token,
                t.status == TriageStatus.RUNNING.value,
            )
            .values(updated_at=now)
            .returning(t.incident_id)
        )
        return {str(incident_id) for incident_id in held.scalars()}

    async def complete_many(
        self, decided: Mapping[str, str], *, token: str, now: datetime
    ) -> set[str]:
        if not decided:
            return set()
        await self.session.flush()  # the decisions the claims name exist first
        t = triage_runs.c
        # One statement for the batch (an executemany is a statement per row on the server),
        # and the token checked by the same statement that settles the claim.
        done = await self.session.execute(
            sa.update(triage_runs)
            .where(
                t.incident_id.in_(list(decided)),
                t.token == token,
                t.status == TriageStatus.RUNNING.value,
            )
            .values(
                status=TriageStatus.DONE.value,
                decision_id=sa.case(dict(decided), value=t.incident_id),
                last_error=None,
                updated_at=now,
            )
            .returning(t.incident_id)
        )
        return {str(incident_id) for incident_id in done.scalars()}

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
