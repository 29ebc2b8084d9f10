"""Specification of the store on the real database (SQLite, or PostgreSQL when configured):
values round-trip exactly, searches treat the user's text literally, and the database's own
constraints surface as domain errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError

from dragon.app import build_services
from dragon.domain.entities import Approval, Incident
from dragon.domain.enums import ApprovalChannel, Role, Severity, Verdict
from dragon.domain.errors import Conflict
from dragon.domain.ports import AuditQuery, IncidentQuery, NewAuditEvent
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER, Caller
from dragon.services.decisions import Proposal
from dragon.services.incidents import NewIncident
from dragon.settings import Settings
from dragon.store.database import Database, connect
from dragon.store.tables import approvals, incidents, principals
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from tests.conftest import FakeClock


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = connect(database_url, pool_size=4)
    yield db
    await db.dispose()


@pytest.fixture
def uow(database: Database) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(database)


@pytest.fixture
def store_services(settings: Settings, database: Database, clock: FakeClock) -> Services:
    """The use cases over the test database, without an app (and its start-up writes) around."""
    return build_services(settings, database, clock=clock)


def incident_at(moment: datetime, *, incident_id: str = "inc_roundtrip") -> Incident:
    return Incident(
        id=incident_id,
        title="timestamps",
        severity=Severity.SEV3,
        source="api",
        labels={"team": "payments", "note": "Grüße 🐉"},
        created_by="prn_alice",
        created_at=moment,
        updated_at=moment,
        first_seen_at=moment,
        last_seen_at=moment,
        acknowledged_at=moment + timedelta(microseconds=1),
    )


# Time


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 22, 9, 0, 0, 123457, tzinfo=UTC),
        datetime(2026, 11, 22, 14, 30, 0, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 3, 29, 1, 59, 59, 1, tzinfo=timezone(timedelta(hours=-7))),
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
async def test_datetimes_round_trip_exactly_as_utc(
    uow: SqlUnitOfWorkFactory, moment: datetime
) -> None:
    async with uow() as tx:
        await tx.incidents.add(incident_at(moment))
        await tx.commit()

    async with uow(write=False) as tx:
        stored = await tx.incidents.get("inc_roundtrip")

    assert stored is not None
    for value in (stored.created_at, stored.updated_at, stored.first_seen_at, stored.last_seen_at):
        assert value == moment
        assert value.tzinfo is UTC
        assert value.microsecond == moment.astimezone(UTC).microsecond
    assert stored.acknowledged_at == moment + timedelta(microseconds=1)
    assert stored.labels == {"team": "payments", "note": "Grüße 🐉"}


async def test_naive_datetime_is_refused_instead_of_being_guessed(
    uow: SqlUnitOfWorkFactory,
) -> None:
    naive = incident_at(datetime(2026, 11, 22, 9, 0))

    async with uow() as tx:
        await tx.incidents.add(naive)  # written with the transaction's next flush
        with pytest.raises(StatementError) as refused:
            await tx.commit()

    assert "naive datetime given to a UTC column" in str(refused.value)
    async with uow(write=False) as tx:
        assert await tx.incidents.get("inc_roundtrip") is None


async def test_times_written_in_different_zones_sort_and_filter_as_instants(
    uow: SqlUnitOfWorkFactory, database: Database
) -> None:
    plus_0530, minus_0700 = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7))
    moments = {
        "inc_0": datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        "inc_1": datetime(2026, 11, 22, 15, 0, tzinfo=plus_0530),  # 09:30 UTC
        "inc_2": datetime(2026, 11, 22, 3, 0, tzinfo=minus_0700),  # 10:00 UTC
    }
    async with uow() as tx:
        for incident_id, moment in moments.items():
            await tx.incidents.add(incident_at(moment, incident_id=incident_id))
        await tx.commit()
    since = datetime(2026, 11, 22, 10, 15, tzinfo=timezone(timedelta(hours=1)))  # 09:15 UTC

    async with database.reader.connect() as connection:
        ordered = await connection.scalars(
            sa.select(incidents.c.id).order_by(incidents.c.created_at)
        )
        later = await connection.scalars(
            sa.select(incidents.c.id)
            .where(incidents.c.created_at >= since)
            .order_by(incidents.c.id)
        )

    assert list(ordered) == ["inc_0", "inc_1", "inc_2"]
    assert list(later) == ["inc_1", "inc_2"]


# Searching incidents


# Audit chain


async def test_a_transactions_audit_events_are_stored_field_for_field_and_move_the_head(
    uow: SqlUnitOfWorkFactory, store_services: Services
) -> None:
    moment = datetime(2026, 11, 22, 14, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5)))
    written = [
        NewAuditEvent(
            occurred_at=moment + timedelta(microseconds=n),
            actor_id="prn_alice",
            actor_name="alice",
            action=f"incident.step_{n}",
            target_type="incident",
            target_id=f"inc_{n}",
            details={"n": n, "note": "Grüße 🐉", "nested": {"ok": True, "list": [1.5, None]}},
            correlation_id="corr-1" if n else None,
            client_address=None if n else "10.0.0.1",
        )
        for n in range(3)
    ]
    for batch in (written[:1], written[1:]):
        async with uow() as tx:
            for event in batch:
                await tx.audit.append(event)
            await tx.commit()

    async with uow(write=False) as tx:
        head = await tx.audit.head()
        stored = list(reversed(await tx.audit.find(AuditQuery(limit=10))))

    assert [e.seq for e in stored] == [1, 2, 3]
    assert head == (3, stored[-1].hash)
    assert [e.prev_hash for e in stored[1:]] == [e.hash for e in stored[:-1]]
    for event, new in zip(stored, written, strict=True):
        assert event.occurred_at == new.occurred_at
        assert event.occurred_at.tzinfo == UTC
        assert (event.actor_id, event.actor_name, event.action) == (
            new.actor_id,
            new.actor_name,
            new.action,
        )
        assert (event.target_type, event.target_id) == (new.target_type, new.target_id)
        assert event.details == new.details
        assert (event.correlation_id, event.client_address) == (
            new.correlation_id,
            new.client_address,
        )
    assert (await store_services.audit.verify()).ok


# JSON columns


async def test_json_columns_are_written_compact_by_orjson_and_read_back_as_written(
    database: Database, uow: SqlUnitOfWorkFactory
) -> None:
    incident = incident_at(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    incident.labels = {"team": "payments", "note": "Grüße 🐉", "nested": [1.5, None, True]}
    async with uow() as tx:
        await tx.incidents.add(incident)
        await tx.commit()

    async with database.writer.connect() as connection:
        text = (
            await connection.execute(
                sa.select(sa.cast(incidents.c.labels, sa.Text)).where(incidents.c.id == incident.id)
            )
        ).scalar_one()
    async with uow(write=False) as tx:
        stored = await tx.incidents.get(incident.id)

    assert stored is not None
    assert stored.labels == incident.labels
    # orjson's compact text (the standard library's encoder puts a space after , and :).
    assert text == '{"team":"payments","note":"Grüße 🐉","nested":[1.5,null,true]}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%", ["100% of checkouts fail", "build cache full"]),
        ("0% o", ["100% of checkouts fail"]),
        ("e_c", ["snake_case job fails"]),
        ("_", ["snake_case job fails"]),
        ("\\t", ["cannot write C:\\tmp"]),
        ("\\", ["cannot write C:\\tmp"]),
        ("CHECKOUTS", ["100% of checkouts fail", "1000 of checkouts slow"]),
        ("runner disk", ["build cache full"]),  # found in the description
        ("nothing like this", []),
    ],
)
async def test_incident_text_search_takes_the_text_literally(
    store_services: Services, text: str, expected: list[str]
) -> None:
    for title, description in (
        ("100% of checkouts fail", ""),
        ("1000 of checkouts slow", ""),
        ("snake_case job fails", ""),
        ("snakeXcase job fails", ""),
        ("cannot write C:\\tmp", ""),
        ("cannot write C:tmp", ""),
        ("build cache full", "the Runner Disk is at 100%"),
    ):
        await store_services.incidents.open(
            SYSTEM_CALLER, NewIncident(title=title, severity=Severity.SEV3, description=description)
        )

    found, _ = await store_services.incidents.find(IncidentQuery(text=text))

    assert sorted(i.title for i in found) == sorted(expected)


@pytest.mark.parametrize("text", ["Ärger", "ärger", "ÄRGER", "ÉCHEC", "Ünïcödé"])
async def test_incident_text_search_ignores_case_beyond_ascii(
    store_services: Services, text: str
) -> None:
    for title in ("Ärger beim Deploy", "Échec du build", "ünïcödé everywhere", "plain ascii"):
        await store_services.incidents.open(
            SYSTEM_CALLER, NewIncident(title=title, severity=Severity.SEV3)
        )

    found, _ = await store_services.incidents.find(IncidentQuery(text=text))

    assert len(found) == 1
    assert text.lower() in found[0].title.lower()


# Constraints surface as domain errors


def approval(decision_id: str, *, principal_id: str, at: datetime) -> Approval:
    return Approval(
        id=f"apv_{principal_id}_{at.timestamp()}",
        decision_id=decision_id,
        principal_id=principal_id,
        principal_name="alice",
        verdict=Verdict.APPROVE,
        justification="ok",
        via=ApprovalChannel.API,
        created_at=at,
    )


async def store_approvals(uow: SqlUnitOfWorkFactory, *rows: Approval) -> None:
    """Straight to the repository in one transaction: the rules in domain.approvals are not
    consulted, so only the database's constraint stands in the way."""
    async with uow() as tx:
        for row in rows:
            await tx.approvals.add(row)
        await tx.commit()


async def pending_decision_id(store_services: Services) -> str:
    developer = await store_services.auth.create_key(SYSTEM_CALLER, name="dev", role=Role.DEVELOPER)
    decision = await store_services.decisions.propose(
        Caller(principal=developer.principal),
        Proposal(action="rollback_deployment", title="roll back", environment="production"),
    )
    return decision.id


async def test_second_verdict_by_one_principal_is_refused_by_the_database_too(
    store_services: Services, uow: SqlUnitOfWorkFactory, clock: FakeClock, database: Database
) -> None:
    decision_id = await pending_decision_id(store_services)
    await store_approvals(uow, approval(decision_id, principal_id="prn_a", at=clock()))
    second = approval(decision_id, principal_id="prn_a", at=clock() + timedelta(1))

    with pytest.raises(Conflict) as refused:
        await store_approvals(uow, second)

    assert refused.value.code == "conflict_concurrent_write"
    async with database.reader.connect() as connection:
        stored = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(approvals)
            .where(approvals.c.decision_id == decision_id)
        )
    assert stored == 1


async def test_conflicting_write_rolls_back_the_whole_transaction(
    store_services: Services, uow: SqlUnitOfWorkFactory, clock: FakeClock, database: Database
) -> None:
    decision_id = await pending_decision_id(store_services)

    twice = [
        approval(decision_id, principal_id="prn_b", at=clock()),
        approval(decision_id, principal_id="prn_b", at=clock() + timedelta(1)),
    ]

    with pytest.raises(Conflict):
        await store_approvals(uow, *twice)

    async with database.reader.connect() as connection:
        stored = await connection.scalar(sa.select(sa.func.count()).select_from(approvals))
    assert stored == 0


# Bootstrapping the first admin


async def test_bootstrap_creates_the_first_admin_once(
    store_services: Services, database: Database
) -> None:
    first = await store_services.auth.bootstrap_admin()
    second = await store_services.auth.bootstrap_admin()

    assert first is not None
    assert (first.principal.name, first.principal.role) == ("admin", Role.ADMIN)
    assert first.secret.startswith("drg_")
    assert first.key.key_hash != first.secret
    assert second is None
    assert (await store_services.auth.authenticate(first.secret)).id == first.principal.id
    async with database.reader.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(principals)) == 1


async def test_bootstrap_does_nothing_once_anyone_exists(store_services: Services) -> None:
    await store_services.auth.create_key(SYSTEM_CALLER, name="alice", role=Role.VIEWER)

    assert await store_services.auth.bootstrap_admin() is None
    listed = await store_services.auth.list_keys()
    assert [(key.name, p.role if p else None) for key, p in listed] == [("alice", Role.VIEWER)]
