"""The unit of work: one session, one transaction, every repository bound to it."""

from __future__ import annotations

import contextlib
from types import TracebackType

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dragon.domain.errors import Conflict
from dragon.domain.ports import (
    ApiKeyRepository,
    ApprovalRepository,
    AuditRepository,
    CorrelationRepository,
    DashboardRepository,
    DecisionRepository,
    DeliveryRepository,
    IncidentRepository,
    NotificationRepository,
    PolicyRepository,
    PrincipalRepository,
    RunbookRepository,
    RunRepository,
    SignalRepository,
    SwitchRepository,
    TriageRepository,
)
from dragon.store.dashboard import SqlDashboardRepository
from dragon.store.database import (
    Database,
    pool_exhausted,
    pool_exhausted_cause,
    unavailable,
    unavailable_cause,
)
from dragon.store.inbox import (
    JobQueue,
    SqlCorrelationRepository,
    SqlDeliveryRepository,
    SqlSignalRepository,
)
from dragon.store.incident_search import IncidentTextSamples
from dragon.store.notifications import SqlNotificationRepository
from dragon.store.repositories import (
    SqlApiKeyRepository,
    SqlApprovalRepository,
    SqlAuditRepository,
    SqlDecisionRepository,
    SqlIncidentRepository,
    SqlPolicyRepository,
    SqlPrincipalRepository,
)
from dragon.store.runs import SqlRunbookRepository, SqlRunRepository, SqlSwitchRepository
from dragon.store.triage import SqlTriageRepository


class SqlUnitOfWork:
    def __init__(
        self,
        session: AsyncSession,
        *,
        jobs: JobQueue | None = None,
        text_samples: IncidentTextSamples | None = None,
    ) -> None:
        self.session = session
        self.incidents: IncidentRepository = SqlIncidentRepository(
            session, text_samples=text_samples
        )
        self.decisions: DecisionRepository = SqlDecisionRepository(session)
        self.approvals: ApprovalRepository = SqlApprovalRepository(session)
        self.principals: PrincipalRepository = SqlPrincipalRepository(session)
        self.api_keys: ApiKeyRepository = SqlApiKeyRepository(session)
        self.policies: PolicyRepository = SqlPolicyRepository(session)
        self._audit = SqlAuditRepository(session)
        self.audit: AuditRepository = self._audit
        self.deliveries: DeliveryRepository = SqlDeliveryRepository(session, jobs=jobs)
        self.signals: SignalRepository = SqlSignalRepository(session)
        self.correlation: CorrelationRepository = SqlCorrelationRepository(session)
        self.dashboard: DashboardRepository = SqlDashboardRepository(session)
        self.triages: TriageRepository = SqlTriageRepository(session)
        self.runs: RunRepository = SqlRunRepository(session)
        self.runbooks: RunbookRepository = SqlRunbookRepository(session)
        self.switches: SwitchRepository = SqlSwitchRepository(session)
        self.notifications: NotificationRepository = SqlNotificationRepository(session)

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
        except (DBAPIError, OSError):
            pass  # the original error says more than the failed rollback
        finally:
            with contextlib.suppress(DBAPIError, OSError):
                await self.session.close()
        if isinstance(exc, IntegrityError):
            raise Conflict(
                "the change conflicts with data stored meanwhile; read it again and retry",
                code="conflict_concurrent_write",
            ) from exc
        if pool_exhausted_cause(exc):
            raise pool_exhausted() from exc
        if unavailable_cause(exc):
            raise unavailable() from exc


class SqlUnitOfWorkFactory:
    """`jobs`: where deliveries sent back for processing are enqueued (procrastinate on
    PostgreSQL), in the same transaction; without it the worker finds them by polling."""

    def __init__(self, database: Database, *, jobs: JobQueue | None = None) -> None:
        self._writer = database.sessions(write=True)
        self._reader = database.sessions(write=False)
        self._statement_reader = database.sessions(write=False, snapshot=False)
        self._jobs = jobs
        self._text_samples = IncidentTextSamples()

    def __call__(self, *, write: bool = True, snapshot: bool = True) -> SqlUnitOfWork:
        if write:
            session = self._writer()
        else:
            session = (self._reader if snapshot else self._statement_reader)()
        return SqlUnitOfWork(session, jobs=self._jobs, text_samples=self._text_samples)
