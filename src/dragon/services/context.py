"""Who is acting, and the request facts every audit event carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dragon.domain.entities import Principal
from dragon.domain.enums import PrincipalKind, Role

SYSTEM = Principal(
    id="system",
    name="system",
    role=Role.ADMIN,
    kind=PrincipalKind.SERVICE,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    correlation_id: str | None = None
    client_address: str | None = None


SYSTEM_CALLER = Caller(principal=SYSTEM)
