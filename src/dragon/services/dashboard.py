"""The dashboard use case: figures from the store, and a cheap marker that moves on any change."""

from __future__ import annotations

from dragon.domain.clock import Clock
from dragon.domain.dashboard import WINDOW, DashboardFigures, compute_figures
from dragon.domain.ports import UnitOfWorkFactory


class DashboardService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def figures(self) -> DashboardFigures:
        now = self._clock()
        async with self._uow(write=False) as uow:
            return compute_figures(
                now=now,
                open_counts=await uow.dashboard.open_incident_counts(),
                incidents=await uow.dashboard.incident_times(since=now - WINDOW),
                decisions=await uow.dashboard.decision_times(since=now - WINDOW),
            )

    async def change_marker(self) -> int:
        """The audit chain's head: every state change writes an audit event, so a new head
        means the figures may have changed, whichever process made the change."""
        async with self._uow(write=False) as uow:
            seq, _ = await uow.audit.head()
            return seq
