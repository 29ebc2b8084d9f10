"""Run retention: finished runs beyond the newest N that finished more than D days ago are
deleted (audited as `runs.pruned`), by the worker every hour or by `dragon runs prune`.
Only runs: incidents, decisions and audit events are never touched."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from dragon.domain.clock import Clock
from dragon.domain.entities import Run
from dragon.domain.ports import UnitOfWorkFactory
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER


@dataclass(frozen=True, kw_only=True)
class Pruned:
    """What a retention pass pruned (or, in a dry run, would prune)."""

    count: int
    runs: list[Run]  # the first of them, oldest first, as many as were asked for
    keep: int
    older_than: datetime
    dry_run: bool


async def prune_runs(
    uow_factory: UnitOfWorkFactory,
    *,
    clock: Clock,
    keep: int,
    age: timedelta,
    dry_run: bool = False,
    show: int = 0,
) -> Pruned:
    now = clock()
    older_than = now - age
    async with uow_factory() as uow:
        total, first = await uow.runs.prunable(keep=keep, older_than=older_than, limit=show)
        report = Pruned(count=total, runs=first, keep=keep, older_than=older_than, dry_run=dry_run)
        if dry_run or not total:
            return report
        pruned = await uow.runs.prune(keep=keep, older_than=older_than)
        await record(
            uow,
            SYSTEM_CALLER,
            action="runs.pruned",
            target_type="runs",
            target_id="retention",
            now=now,
            details={"pruned": pruned, "keep": keep, "older_than_days": age.days},
        )
        await uow.commit()
    return dataclasses.replace(report, count=pruned)
