"""The router's claim and the runs scheduler's lookup read indexes that do not grow with what
is done (migration 0012): the unrouted notification events from a partial index of their own,
so the entries of routed events are never in the range PostgreSQL walks (EXPLAIN on a fresh,
never-analyzed database, as every young store is); the migration goes up and down on every
store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import POSTGRES_URL
from tests.integration.test_triage_queue import _migrate, scratch_url  # noqa: F401

BEFORE = "0011_listing_text_statistics"

# store.notifications.SqlNotificationRepository.claim_unrouted, as it is sent
CLAIM = (
    "SELECT notification_events.id FROM notification_events "
    "WHERE notification_events.routed_at IS NULL ORDER BY notification_events.id "
    "LIMIT 100 FOR UPDATE SKIP LOCKED"
)


def _indexes(connection: sa.Connection, table: str) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(connection).get_indexes(table)}


async def test_the_outbox_and_scheduler_indexes_go_up_and_down_cleanly(
    scratch_url: str,  # noqa: F811 - the fixture, imported
) -> None:
    engine = create_async_engine(scratch_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, "upgrade", "head")
            up = await connection.run_sync(_indexes, "notification_events")
            up_decisions = await connection.run_sync(_indexes, "decisions")
            await connection.run_sync(_migrate, "downgrade", BEFORE)
            down = await connection.run_sync(_indexes, "notification_events")
            down_decisions = await connection.run_sync(_indexes, "decisions")
            await connection.run_sync(_migrate, "upgrade", "head")
            again = await connection.run_sync(_indexes, "notification_events")
            await connection.commit()
    finally:
        await engine.dispose()

    assert "ix_notification_events_unrouted" in up
    assert "ix_notification_events_routed_at_id" not in up
    assert "ix_decisions_status_action_id" in up_decisions
    assert "ix_notification_events_routed_at_id" in down
    assert "ix_notification_events_unrouted" not in down
    assert "ix_decisions_status_action_id" not in down_decisions
    assert again == up


async def test_the_router_claims_from_the_unrouted_index_in_a_young_store(
    scratch_url: str,  # noqa: F811 - the fixture, imported
) -> None:
    if not POSTGRES_URL:
        pytest.skip("the plan is PostgreSQL's")
    now = datetime(2026, 12, 4, tzinfo=UTC)
    insert = sa.text(
        "INSERT INTO notification_events (id, event, subject, created_at, routed_at) "
        "VALUES (:id, 'decision.proposed', '{}', :now, :routed_at)"
    )
    engine = create_async_engine(scratch_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, "upgrade", "head")
            await connection.execute(
                insert,
                [
                    {"id": f"nev_{n:06d}", "now": now, "routed_at": now if n < 3000 else None}
                    for n in range(3010)
                ],
            )
            plan = "\n".join((await connection.execute(sa.text(f"EXPLAIN {CLAIM}"))).scalars())
            claimed = (await connection.execute(sa.text(CLAIM))).scalars().all()
            await connection.rollback()
    finally:
        await engine.dispose()

    assert "ix_notification_events_unrouted" in plan, plan
    assert claimed == [f"nev_{n:06d}" for n in range(3000, 3010)]
