"""Repositories for runs, runbooks and the actions kill switch."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dragon.domain.entities import ActionsSwitch, Decision, Incident, Run, Runbook, Signal
from dragon.domain.enums import DecisionStatus, RunStatus
from dragon.domain.ports import RunQuery
from dragon.domain.signals import SignalKind
from dragon.store.repositories import SessionRepository, keyset_page
from dragon.store.tables import runs

_FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED)


class SqlRunRepository(SessionRepository):
    async def add_if_new(self, run: Run) -> bool:
        values = {c.name: getattr(run, c.name) for c in runs.columns}
        inserted = await self.session.execute(
            self._insert(runs)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(runs.c.id)
        )
        return inserted.first() is not None

    async def get(self, run_id: str, *, for_update: bool = False) -> Run | None:
        return await self.session.get(Run, run_id, with_for_update=for_update)

    async def for_decision(self, decision_id: str) -> Run | None:
        entity: Any = Run
        stmt = sa.select(Run).where(entity.decision_id == decision_id).limit(1)
        return await self.session.scalar(stmt)

    async def find(self, query: RunQuery) -> tuple[list[Run], str | None]:
        entity: Any = Run
        stmt = sa.select(Run)
        if query.status:
            stmt = stmt.where(entity.status == query.status)
        if query.decision_id:
            stmt = stmt.where(entity.decision_id == query.decision_id)
        if query.action:
            stmt = stmt.where(entity.action == query.action)
        return await keyset_page(self.session, stmt, entity.id, query.page)

    async def claim_due(self, *, now: datetime, limit: int) -> list[Run]:
        entity: Any = Run
        stmt = (
            sa.select(Run)
            .where(
                sa.or_(
                    sa.and_(entity.status == RunStatus.QUEUED, entity.next_attempt_at <= now),
                    sa.and_(entity.status == RunStatus.RUNNING, entity.lease_expires_at <= now),
                )
            )
            .order_by(entity.next_attempt_at, entity.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def unscheduled(self, *, actions: Sequence[str], limit: int) -> list[Decision]:
        decision: Any = Decision
        has_run = sa.exists().where(runs.c.decision_id == decision.id)
        stmt = (
            sa.select(Decision)
            .where(
                decision.status.in_([DecisionStatus.APPROVED, DecisionStatus.AUTO_APPROVED]),
                decision.action.in_(list(actions)),
                ~has_run,
            )
            .order_by(decision.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def lock_repo(self, repo: str) -> None:
        # SQLite serialises writers already; PostgreSQL takes a transaction-scoped advisory lock.
        if self.session.get_bind().dialect.name == "postgresql":
            digest = hashlib.sha256(f"runs-repo:{repo}".encode()).digest()[:8]
            key = int.from_bytes(digest, "big", signed=True)
            await self.session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    async def started_since(self, *, repo: str, since: datetime) -> int:
        await self.session.flush()  # runs started earlier in this transaction count too
        stmt = (
            sa.select(sa.func.count())
            .select_from(runs)
            .where(runs.c.repo == repo, runs.c.started_at >= since, runs.c.dry_run.is_(False))
        )
        return int(await self.session.scalar(stmt) or 0)

    @staticmethod
    def _prunable(*, keep: int, older_than: datetime) -> list[Any]:
        finished = runs.c.status.in_([s.value for s in _FINISHED])
        newest = sa.select(runs.c.id).where(finished).order_by(runs.c.id.desc()).limit(keep)
        return [finished, runs.c.finished_at < older_than, runs.c.id.not_in(newest)]

    async def prunable(
        self, *, keep: int, older_than: datetime, limit: int
    ) -> tuple[int, list[Run]]:
        where = self._prunable(keep=keep, older_than=older_than)
        count = sa.select(sa.func.count()).select_from(runs).where(*where)
        total = int(await self.session.scalar(count) or 0)
        entity: Any = Run
        shown = sa.select(Run).where(*where).order_by(entity.id).limit(limit)
        return total, list(await self.session.scalars(shown))

    async def prune(self, *, keep: int, older_than: datetime) -> int:
        result: Any = await self.session.execute(
            sa.delete(runs)
            .where(*self._prunable(keep=keep, older_than=older_than))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    async def awaiting_outcome(self, *, limit: int) -> list[tuple[Run, str]]:
        entity: Any = Run
        incident: Any = Incident
        stmt = (
            sa.select(Run, incident.fingerprint)
            .join(Incident, incident.id == entity.incident_id)
            .where(
                entity.status == RunStatus.SUCCEEDED,
                entity.outcome.is_(None),
                entity.dry_run.is_(False),
                incident.fingerprint.is_not(None),
            )
            .order_by(entity.id)
            .limit(limit)
            .with_for_update(of=runs, skip_locked=True)
        )
        return [(run, str(fp)) for run, fp in (await self.session.execute(stmt)).all()]

    async def next_ci_signal(self, fingerprint: str, *, after: datetime) -> Signal | None:
        entity: Any = Signal
        stmt = (
            sa.select(Signal)
            .where(
                entity.fingerprint == fingerprint,
                entity.kind.in_([SignalKind.CI_FAILURE.value, SignalKind.CI_RECOVERY.value]),
                entity.created_at > after,
            )
            .order_by(entity.created_at, entity.id)
            .limit(1)
        )
        return await self.session.scalar(stmt)


class SqlRunbookRepository(SessionRepository):
    async def add(self, runbook: Runbook) -> None:
        await self._add(runbook)

    async def versions(self, name: str) -> list[Runbook]:
        entity: Any = Runbook
        stmt = sa.select(Runbook).where(entity.name == name).order_by(entity.id.desc())
        return list(await self.session.scalars(stmt))

    async def get(self, name: str, version: str) -> Runbook | None:
        entity: Any = Runbook
        stmt = sa.select(Runbook).where(entity.name == name, entity.version == version)
        return await self.session.scalar(stmt)

    async def all_latest(self) -> list[Runbook]:
        entity: Any = Runbook
        stmt = sa.select(Runbook).order_by(entity.name, entity.id.desc())
        latest: dict[str, Runbook] = {}
        for runbook in await self.session.scalars(stmt):
            latest.setdefault(runbook.name, runbook)
        return list(latest.values())


class SqlSwitchRepository(SessionRepository):
    async def get(self, name: str) -> ActionsSwitch | None:
        return await self.session.get(ActionsSwitch, name)

    async def put(self, switch: ActionsSwitch) -> None:
        await self.session.merge(switch)
        await self.session.flush()
