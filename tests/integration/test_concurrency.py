"""Specification of concurrent use on the real database: writes racing each other keep the audit
chain whole and the approval rules exact (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from dragon.app import build_services
from dragon.domain.audit import ChainReport
from dragon.domain.entities import Decision, Incident
from dragon.domain.enums import DecisionStatus, IncidentStatus, Role, Severity, Verdict
from dragon.domain.errors import Conflict
from dragon.domain.ports import AuditQuery, IncidentQuery, Page
from dragon.services.audit_log import AuditLog
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER, Caller
from dragon.services.decisions import DecisionView, Proposal
from dragon.services.incidents import NewIncident
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.store.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.conftest import FakeClock

CONCURRENT = 20


@pytest.fixture
async def store_services(
    settings: Settings, database_url: str, clock: FakeClock
) -> AsyncIterator[Services]:
    """The use cases over the test database, with no app (and its start-up writes) around."""
    database = connect(database_url, pool_size=CONCURRENT)
    yield build_services(settings, database, clock=clock)
    await database.dispose()


@dataclass(frozen=True)
class Team:
    developer: Caller
    approver: Caller
    approver2: Caller


@pytest.fixture
async def team(store_services: Services) -> Team:
    callers = {}
    for name, role in (
        ("developer", Role.DEVELOPER),
        ("approver", Role.APPROVER),
        ("approver2", Role.APPROVER),
    ):
        issued = await store_services.auth.create_key(SYSTEM_CALLER, name=name, role=role)
        callers[name] = Caller(principal=issued.principal, correlation_id=f"req-{name}")
    return Team(**callers)


async def all_events(services: Services) -> list[tuple[int, str]]:
    events = await services.audit.find(AuditQuery(limit=1000))
    return sorted((e.seq, e.action) for e in events)


async def open_and_acknowledge(services: Services, caller: Caller, number: int) -> Incident:
    incident = await services.incidents.open(
        caller, NewIncident(title=f"job {number} failed", severity=Severity.SEV3)
    )
    return await services.incidents.acknowledge(caller, incident.id)


async def production_rollback(services: Services, team: Team, *, approvals: int) -> Decision:
    decision = await services.decisions.propose(
        team.developer,
        Proposal(action="rollback_deployment", title="roll back", environment="production"),
    )
    assert decision.status is DecisionStatus.PENDING_APPROVAL
    assert decision.approvals_required == approvals
    return decision


async def test_concurrent_incidents_each_get_their_own_contiguous_audit_events(
    store_services: Services, team: Team
) -> None:
    before = len(await all_events(store_services))

    incidents = await asyncio.gather(
        *(open_and_acknowledge(store_services, team.developer, n) for n in range(CONCURRENT))
    )

    assert len({i.id for i in incidents}) == CONCURRENT
    assert all(i.status is IncidentStatus.ACKNOWLEDGED for i in incidents)
    stored, _ = await store_services.incidents.find(IncidentQuery(page=Page(limit=100)))
    assert len(stored) == CONCURRENT
    events = await all_events(store_services)
    total = before + 2 * CONCURRENT
    assert [seq for seq, _ in events] == list(range(1, total + 1))
    actions = [action for _, action in events[before:]]
    assert actions.count("incident.created") == CONCURRENT
    assert actions.count("incident.acknowledged") == CONCURRENT
    assert await store_services.audit.verify() == ChainReport(ok=True, checked=total)


async def test_concurrent_first_writes_on_an_empty_store_start_one_chain(
    store_services: Services,
) -> None:
    """No event exists yet, so no chain head either: the first appends race to create it."""
    incidents = await asyncio.gather(
        *(
            store_services.incidents.open(
                SYSTEM_CALLER, NewIncident(title=f"alert {n}", severity=Severity.SEV2)
            )
            for n in range(CONCURRENT)
        )
    )

    assert len(incidents) == CONCURRENT
    events = await all_events(store_services)
    assert events == [(seq, "incident.created") for seq in range(1, CONCURRENT + 1)]
    assert await store_services.audit.verify() == ChainReport(ok=True, checked=CONCURRENT)


class WriteAfterHeadIsRead:
    """The real unit of work, except that reading the chain head lets another transaction
    append and commit an event before the reader goes on to the events themselves."""

    def __init__(self, factory: SqlUnitOfWorkFactory, services: Services) -> None:
        self._factory = factory
        self._services = services

    def __call__(self, *, write: bool = True, snapshot: bool = True) -> SqlUnitOfWork:
        uow = self._factory(write=write, snapshot=snapshot)
        head = uow.audit.head

        async def head_then_write() -> tuple[int, str]:
            found = await head()
            await self._services.incidents.open(
                SYSTEM_CALLER, NewIncident(title="written meanwhile", severity=Severity.SEV4)
            )
            return found

        uow.audit.head = head_then_write  # type: ignore[method-assign]
        return uow


async def test_events_committed_while_verifying_do_not_look_like_tampering(
    store_services: Services, team: Team, database_url: str
) -> None:
    before = len(await all_events(store_services))
    database = connect(database_url, pool_size=2)
    try:
        racing = AuditLog(WriteAfterHeadIsRead(SqlUnitOfWorkFactory(database), store_services))

        report = await racing.verify()
    finally:
        await database.dispose()

    assert report == ChainReport(ok=True, checked=before)
    assert len(await all_events(store_services)) == before + 1
    assert await store_services.audit.verify() == ChainReport(ok=True, checked=before + 1)


async def test_a_read_of_one_statement_runs_outside_a_transaction_on_postgresql(
    database_url: str,
) -> None:
    """`snapshot=False` (the incident listing) spares the BEGIN and ROLLBACK round trips: on
    PostgreSQL each statement is its own transaction; every other read shares one."""
    database = connect(database_url, pool_size=2)
    factory = SqlUnitOfWorkFactory(database)
    xact = sa.text("SELECT txid_current()")
    try:
        if database.dialect != "postgresql":
            return  # SQLite's readers keep their one connection and WAL snapshot
        async with factory(write=False) as uow:
            shared = {(await uow.session.execute(xact)).scalar() for _ in range(2)}
        async with factory(write=False, snapshot=False) as uow:
            own = {(await uow.session.execute(xact)).scalar() for _ in range(2)}
    finally:
        await database.dispose()

    assert len(shared) == 1
    assert len(own) == 2


async def test_two_approvers_approving_at_once_approve_a_two_approval_decision(
    store_services: Services, team: Team
) -> None:
    decision = await production_rollback(store_services, team, approvals=2)

    views = await asyncio.gather(
        *(
            store_services.decisions.give_verdict(
                caller, decision.id, verdict=Verdict.APPROVE, justification="safe"
            )
            for caller in (team.approver, team.approver2)
        )
    )

    statuses = sorted(v.decision.status.value for v in views)
    assert statuses == ["approved", "pending_approval"]  # exactly one of them completed it
    final = await store_services.decisions.get(decision.id)
    assert final.decision.status is DecisionStatus.APPROVED
    assert sorted(a.principal_name for a in final.approvals) == ["approver", "approver2"]
    events = await all_events(store_services)
    assert [a for _, a in events].count("approval.approved") == 2
    assert [a for _, a in events].count("decision.approved") == 1
    assert (await store_services.audit.verify()).ok


async def test_one_approver_approving_twice_at_once_is_counted_once(
    store_services: Services, team: Team
) -> None:
    decision = await production_rollback(store_services, team, approvals=2)

    outcomes = await asyncio.gather(
        *(
            store_services.decisions.give_verdict(
                team.approver, decision.id, verdict=Verdict.APPROVE, justification="safe"
            )
            for _ in range(2)
        ),
        return_exceptions=True,
    )

    views = [o for o in outcomes if isinstance(o, DecisionView)]
    refusals = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(views) == 1
    assert [type(r) for r in refusals] == [Conflict]
    assert isinstance(refusals[0], Conflict)
    assert refusals[0].code == "approval_duplicate"
    final = await store_services.decisions.get(decision.id)
    assert final.decision.status is DecisionStatus.PENDING_APPROVAL
    assert [a.principal_name for a in final.approvals] == ["approver"]
    assert (await store_services.audit.verify()).ok


async def test_many_verdicts_at_once_never_exceed_or_miss_the_quorum(
    store_services: Services, team: Team
) -> None:
    decision = await production_rollback(store_services, team, approvals=2)
    extra = [
        Caller(
            principal=(
                await store_services.auth.create_key(
                    SYSTEM_CALLER, name=f"approver{n}", role=Role.APPROVER
                )
            ).principal
        )
        for n in range(3, 7)
    ]
    callers = [team.approver, team.approver2, *extra]

    outcomes = await asyncio.gather(
        *(
            store_services.decisions.give_verdict(
                caller, decision.id, verdict=Verdict.APPROVE, justification="safe"
            )
            for caller in callers
        ),
        return_exceptions=True,
    )

    accepted = [o for o in outcomes if isinstance(o, DecisionView)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 2
    assert len(refused) == len(callers) - 2
    assert all(isinstance(r, Conflict) and r.code == "decision_not_pending" for r in refused)
    final = await store_services.decisions.get(decision.id)
    assert final.decision.status is DecisionStatus.APPROVED
    assert len(final.approvals) == 2
    assert (await store_services.audit.verify()).ok
