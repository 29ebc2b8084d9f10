"""Specification of tamper evidence on the real database: events written by the use cases, then
edited, deleted or swapped by raw SQL behind Dragon's back, are caught at the exact seq."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dragon.app import build_services
from dragon.domain.audit import ChainReport, event_hash
from dragon.domain.enums import Role, Severity, Verdict
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER, Caller
from dragon.services.decisions import Proposal
from dragon.services.incidents import NewIncident
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.store.tables import audit_events
from tests.conftest import FakeClock, Keys

# What `recorded_chain` writes, in order; the index + 1 is the seq.
ACTIONS = [
    "principal.created",  # 1 developer
    "api_key.created",  # 2
    "principal.created",  # 3 approver
    "api_key.created",  # 4
    "principal.created",  # 5 approver2
    "api_key.created",  # 6
    "incident.created",  # 7
    "decision.proposed",  # 8
    "decision.pending_approval",  # 9
    "approval.approved",  # 10
    "approval.approved",  # 11
    "decision.approved",  # 12
]
NEWEST = len(ACTIONS)


@pytest.fixture
async def store_services(
    settings: Settings, database_url: str, clock: FakeClock
) -> AsyncIterator[Services]:
    """The use cases over the test database, with no app (and its start-up writes) around."""
    database = connect(database_url, pool_size=4)
    yield build_services(settings, database, clock=clock)
    await database.dispose()


@pytest.fixture
async def raw(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A plain engine, as someone with database access but not Dragon's code would have."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def recorded_chain(store_services: Services, clock: FakeClock) -> Services:
    """A developer's production rollback, approved by two approvers: twelve audit events."""
    issued = {}
    for name, role in (
        ("developer", Role.DEVELOPER),
        ("approver", Role.APPROVER),
        ("approver2", Role.APPROVER),
    ):
        issued[name] = await store_services.auth.create_key(SYSTEM_CALLER, name=name, role=role)
        clock.advance(seconds=1)
    developer = Caller(principal=issued["developer"].principal, correlation_id="req-dev")
    incident = await store_services.incidents.open(
        developer,
        NewIncident(title="checkout down", severity=Severity.SEV1, environment="production"),
    )
    clock.advance(seconds=1)
    decision = await store_services.decisions.propose(
        developer,
        Proposal(action="rollback_deployment", title="roll back", incident_id=incident.id),
    )
    for name in ("approver", "approver2"):
        clock.advance(seconds=1)
        await store_services.decisions.give_verdict(
            Caller(principal=issued[name].principal, client_address="203.0.113.7"),
            decision.id,
            verdict=Verdict.APPROVE,
            justification=f"{name}: rollback is safe",
        )
    return store_services


async def stored_actions(raw: AsyncEngine) -> list[tuple[int, str]]:
    async with raw.connect() as connection:
        rows = await connection.execute(
            sa.select(audit_events.c.seq, audit_events.c.action).order_by(audit_events.c.seq)
        )
        return [(int(seq), str(action)) for seq, action in rows]


async def event_row(raw: AsyncEngine, seq: int) -> dict[str, Any]:
    async with raw.connect() as connection:
        row = (
            await connection.execute(sa.select(audit_events).where(audit_events.c.seq == seq))
        ).one()
        return dict(row._mapping)


async def tamper(raw: AsyncEngine, statement: sa.Executable) -> None:
    async with raw.begin() as connection:
        result = await connection.execute(statement)
        assert getattr(result, "rowcount", 1) == 1


def at(seq: int) -> Any:
    return audit_events.c.seq == seq


# The untouched chain


async def test_untouched_chain_verifies_with_every_event_counted(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    report = await recorded_chain.audit.verify()

    assert report == ChainReport(ok=True, checked=NEWEST)
    assert await stored_actions(raw) == list(enumerate(ACTIONS, start=1))


async def test_events_carry_who_from_where_and_which_request(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    proposed = await event_row(raw, 8)
    approved = await event_row(raw, 10)

    assert (proposed["actor_name"], proposed["correlation_id"]) == ("developer", "req-dev")
    assert proposed["details"]["risk_score"] == 80  # 55 base + 25 production
    assert (approved["actor_name"], approved["client_address"]) == ("approver", "203.0.113.7")
    assert approved["details"]["justification"] == "approver: rollback is safe"
    assert approved["prev_hash"] == (await event_row(raw, 9))["hash"]


# Tampering, caught at the exact seq


async def test_editing_a_middle_events_details_is_caught_at_that_event(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    await tamper(
        raw,
        sa.update(audit_events)
        .where(at(10))
        .values(details={"justification": "approver: looks fine to me"}),
    )

    report = await recorded_chain.audit.verify()

    assert report == ChainReport(False, 9, 10, "content does not match its hash")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor_name", "approver3"),
        ("action", "approval.rejected"),
        ("target_id", "dec_other"),
        ("correlation_id", "req-forged"),
        ("client_address", "198.51.100.1"),
    ],
)
async def test_editing_any_column_of_an_event_is_caught(
    recorded_chain: Services, raw: AsyncEngine, column: str, value: str
) -> None:
    await tamper(raw, sa.update(audit_events).where(at(10)).values({column: value}))

    report = await recorded_chain.audit.verify()

    assert (report.ok, report.first_broken_seq) == (False, 10)


async def test_moving_an_event_by_one_microsecond_is_caught(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    original = (await event_row(raw, 4))["occurred_at"]
    await tamper(
        raw,
        sa.update(audit_events)
        .where(at(4))
        .values(occurred_at=original + timedelta(microseconds=1)),
    )

    report = await recorded_chain.audit.verify()

    assert (report.ok, report.first_broken_seq) == (False, 4)


async def test_deleting_a_middle_event_is_caught_at_its_seq(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    await tamper(raw, sa.delete(audit_events).where(at(6)))

    report = await recorded_chain.audit.verify()

    assert report == ChainReport(False, 5, 6, "event missing")


async def test_deleting_the_first_event_is_caught_at_seq_one(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    await tamper(raw, sa.delete(audit_events).where(at(1)))

    report = await recorded_chain.audit.verify()

    assert report == ChainReport(False, 0, 1, "event missing")


async def test_deleting_the_newest_event_is_caught_against_the_chain_head(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    await tamper(raw, sa.delete(audit_events).where(at(NEWEST)))

    report = await recorded_chain.audit.verify()

    assert report == ChainReport(False, NEWEST - 1, NEWEST, "events after this point are missing")


async def test_swapping_two_events_actions_and_details_is_caught_at_the_earlier_one(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    first, second = await event_row(raw, 4), await event_row(raw, 9)
    await tamper(
        raw,
        sa.update(audit_events)
        .where(at(4))
        .values(action=second["action"], details=second["details"]),
    )
    await tamper(
        raw,
        sa.update(audit_events)
        .where(at(9))
        .values(action=first["action"], details=first["details"]),
    )

    report = await recorded_chain.audit.verify()

    assert report == ChainReport(False, 3, 4, "content does not match its hash")


async def test_an_edit_with_its_own_hash_recomputed_is_caught_at_the_next_event(
    recorded_chain: Services, raw: AsyncEngine
) -> None:
    """A forger who knows the hash formula still cannot fix the successor's link."""
    row = await event_row(raw, 10)
    row["details"] = {**row["details"], "justification": "rubber stamp"}
    forged_hash = event_hash(**{k: v for k, v in row.items() if k != "hash"})
    await tamper(
        raw,
        sa.update(audit_events).where(at(10)).values(details=row["details"], hash=forged_hash),
    )

    report = await recorded_chain.audit.verify()

    assert report == ChainReport(False, 10, 11, "previous hash does not match")


# Through the API


async def test_audit_verify_endpoint_reports_the_broken_seq_after_tampering(
    client: httpx.AsyncClient, keys: Keys, raw: AsyncEngine
) -> None:
    before = await client.get("/api/v1/audit/verify", headers=keys.of("admin"))
    assert before.status_code == 200, before.text
    assert before.json()["status"] == "ok"
    assert before.json()["first_broken_seq"] is None
    assert before.json()["checked"] >= 14  # seven principals, each with a key

    await tamper(raw, sa.update(audit_events).where(at(3)).values(details={"role": "admin"}))
    after = await client.get("/api/v1/audit/verify", headers=keys.of("admin"))

    assert after.status_code == 200, after.text
    assert after.json() == {
        "status": "broken",
        "checked": 2,
        "first_broken_seq": 3,
        "reason": "content does not match its hash",
    }


async def test_only_admins_may_verify_the_audit_chain(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    refused = await client.get("/api/v1/audit/verify", headers=keys.of("approver"))

    assert refused.status_code == 403
