"""Figures an operator watches, read from the store when /metrics is scraped: the inbox's depth
and age, deliveries by status, decisions waiting for approval, the connection pool's use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from dragon.domain.enums import DecisionStatus, DeliveryStatus
from dragon.store import tables
from dragon.store.database import Database


@dataclass(frozen=True)
class PoolUse:
    size: int
    checked_out: int
    overflow: int


@dataclass(frozen=True)
class OperationalSnapshot:
    deliveries_by_status: dict[str, int] = field(default_factory=dict)
    oldest_pending_at: datetime | None = None
    pending_approvals: int = 0
    runs_by_status: dict[str, int] = field(default_factory=dict)
    pools: dict[str, PoolUse] = field(default_factory=dict)
    store_reachable: bool = True


class SqlOperationalStats:
    def __init__(self, database: Database) -> None:
        self._database = database

    def pool_use(self) -> dict[str, PoolUse]:
        pools = {"writer": self._database.writer.sync_engine.pool}
        reader = self._database.reader.sync_engine.pool
        if reader is not pools["writer"]:
            pools["reader"] = reader
        use: dict[str, PoolUse] = {}
        for name, pool in pools.items():
            size = getattr(pool, "size", lambda: 0)()
            checked_out = getattr(pool, "checkedout", lambda: 0)()
            overflow = max(getattr(pool, "overflow", lambda: 0)(), 0)
            use[name] = PoolUse(size=size, checked_out=checked_out, overflow=overflow)
        return use

    async def snapshot(self) -> OperationalSnapshot:
        """The figures; with the store down, only the pools' (a scrape must not fail)."""
        try:
            return await self._read()
        except (DBAPIError, OSError, TimeoutError, sa_exc.TimeoutError):
            return OperationalSnapshot(pools=self.pool_use(), store_reachable=False)

    async def _read(self) -> OperationalSnapshot:
        d, dec = tables.deliveries, tables.decisions
        async with self._database.reader.connect() as connection:
            by_status = {
                str(status): int(count)
                for status, count in await connection.execute(
                    sa.select(d.c.status, sa.func.count()).group_by(d.c.status)
                )
            }
            oldest = await connection.scalar(
                sa.select(sa.func.min(d.c.received_at)).where(d.c.status == DeliveryStatus.PENDING)
            )
            pending = await connection.scalar(
                sa.select(sa.func.count()).where(dec.c.status == DecisionStatus.PENDING_APPROVAL)
            )
            runs = await self._runs_by_status(connection)
        return OperationalSnapshot(
            deliveries_by_status=by_status,
            oldest_pending_at=oldest,
            pending_approvals=int(pending or 0),
            runs_by_status=runs,
            pools=self.pool_use(),
        )

    async def _runs_by_status(self, connection: AsyncConnection) -> dict[str, int]:
        runs = tables.metadata.tables.get("runs")
        if runs is None or "status" not in runs.c:
            return {}
        rows = await connection.execute(
            sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
        )
        return {str(status): int(count) for status, count in rows}
