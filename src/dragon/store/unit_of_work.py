"""The unit of work: one session, one transaction, every repository bound to it."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from dragon.domain.errors import Conflict, Unavailable
from dragon.domain.ports import (
    ApiKeyRepository,
    ApprovalRepository,
    AuditRepository,
    CorrelationRepository,
    DecisionRepository,
    DeliveryRepository,
    IncidentRepository,
    PolicyRepository,
    PrincipalRepository,
    SignalRepository,
)
from dragon.store.database import Database
from dragon.store.inbox import (
    SqlCorrelationRepository,
    SqlDeliveryRepository,
    SqlSignalRepository,
)
from dragon.store.repositories import (
    SqlApiKeyRepository,
    SqlApprovalRepository,
    SqlAuditRepository,
    SqlDecisionRepository,
    SqlIncidentRepository,
    SqlPolicyRepository,
    SqlPrincipalRepository,
)


class SqlUnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.incidents: IncidentRepository = SqlIncidentRepository(session)
        self.decisions: DecisionRepository = SqlDecisionRepository(session)
        self.approvals: ApprovalRepository = SqlApprovalRepository(session)
        self.principals: PrincipalRepository = SqlPrincipalRepository(session)
        self.api_keys: ApiKeyRepository = SqlApiKeyRepository(session)
        self.policies: PolicyRepository = SqlPolicyRepository(session)
        self._audit = SqlAuditRepository(session)
        self.audit: AuditRepository = self._audit
        self.deliveries: DeliveryRepository = SqlDeliveryRepository(session)
        self.signals: SignalRepository = SqlSignalRepository(session)
        self.correlation: CorrelationRepository = SqlCorrelationRepository(session)

    async def commit(self) -> None:
        await self._audit.write_pending()
        await self.session.commit()

    async def __aenter__(self) -> SqlUnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Closing (not rolling back) keeps loaded entities readable after the transaction;
        # anything uncommitted is discarded by the close either way.
        try:
            if exc is not None:
                await self.session.rollback()
        except DBAPIError:
            pass  # the original error says more than the failed rollback
        finally:
            await self.session.close()
        if isinstance(exc, IntegrityError):
            raise Conflict(
                "the change conflicts with data stored meanwhile; read it again and retry",
                code="conflict_concurrent_write",
            ) from exc
        if isinstance(exc, OperationalError | DBAPIError) and _is_connection_problem(exc):
            raise Unavailable(
                "the database is unreachable; retry shortly", code="database_unavailable"
            ) from exc


def _is_connection_problem(exc: DBAPIError) -> bool:
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError)


class SqlUnitOfWorkFactory:
    def __init__(self, database: Database) -> None:
        self._writer = database.sessions(write=True)
        self._reader = database.sessions(write=False)

    def __call__(self, *, write: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork((self._writer if write else self._reader)())
