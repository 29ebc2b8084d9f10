"""The one audit writer, and reading and verifying the chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from dragon.domain.audit import ChainReport, ChainWalker
from dragon.domain.entities import AuditEvent
from dragon.domain.ports import AuditQuery, NewAuditEvent, UnitOfWork, UnitOfWorkFactory
from dragon.services.context import Caller


async def record(
    uow: UnitOfWork,
    caller: Caller,
    *,
    action: str,
    target_type: str,
    target_id: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event inside the caller's transaction, so it commits with the change."""
    await uow.audit.append(
        NewAuditEvent(
            occurred_at=now,
            actor_id=caller.principal.id,
            actor_name=caller.principal.name,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details or {},
            correlation_id=caller.correlation_id,
            client_address=caller.client_address,
        )
    )


class AuditLog:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def find(self, query: AuditQuery) -> list[AuditEvent]:
        async with self._uow(write=False) as uow:
            return await uow.audit.find(query)

    async def export(self) -> AsyncIterator[AuditEvent]:
        async with self._uow(write=False) as uow:
            async for event in uow.audit.stream():
                yield event

    async def verify(self) -> ChainReport:
        # One read transaction sees one consistent snapshot of the events and the chain tip.
        async with self._uow(write=False) as uow:
            head_seq, head_hash = await uow.audit.head()
            walker = ChainWalker()
            async for event in uow.audit.stream():
                if not walker.feed(event):
                    break
            return walker.finish(head_seq=head_seq, head_hash=head_hash)
