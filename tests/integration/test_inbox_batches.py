"""Specification of the inbox's group commit on the real database (SQLite, or PostgreSQL when
configured): one batch of new, redelivered and doubled deliveries answers each with what is
stored, every row is committed when its waiter is answered, and the batch's statement is
timed like any other."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import structlog.testing
from prometheus_client import REGISTRY

from dragon.api.problems import dragon_problem
from dragon.domain.entities import Delivery
from dragon.domain.errors import Unavailable, ValidationFailed
from dragon.domain.ports import NewDelivery
from dragon.store.database import Database, connect
from dragon.store.inbox import GroupCommitInbox
from dragon.store.tables import deliveries

RECEIVED = datetime(2026, 11, 22, 9, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = connect(database_url, pool_size=2)
    yield db
    await db.dispose()


def delivery(delivery_id: str, key: str) -> NewDelivery:
    return NewDelivery(
        id=delivery_id,
        source="github",
        delivery_key=key,
        event_type="workflow_run",
        body=b'{"action": "completed"}',
        headers={"x-github-event": "workflow_run", "x-github-delivery": key},
        received_at=RECEIVED,
        ignored=None,
    )


async def stored_rows(url: str) -> dict[str, str]:
    """Delivery key to id, as a connection of its own (another engine) reads the store."""
    other = connect(url, pool_size=1)
    try:
        async with other.reader.connect() as conn:
            found = await conn.execute(sa.select(deliveries.c.delivery_key, deliveries.c.id))
            return {str(key): str(delivery_id) for key, delivery_id in found}
    finally:
        await other.dispose()


async def test_one_batch_answers_new_redelivered_and_doubled_deliveries_with_what_is_stored(
    database: Database, database_url: str
) -> None:
    inbox = GroupCommitInbox(database)
    try:
        assert await inbox.add(delivery("dlv_earlier", "key-earlier")) is None
        # Queued together, so the writer stores them as one batch.
        outcomes = await asyncio.gather(
            inbox.add(delivery("dlv_a", "key-a")),
            inbox.add(delivery("dlv_again", "key-earlier")),
            inbox.add(delivery("dlv_c1", "key-c")),
            inbox.add(delivery("dlv_c2", "key-c")),
            inbox.add(delivery("dlv_b", "key-b")),
        )
        # Every waiter is answered only once its outcome is committed: another connection
        # sees each key once, under the id that was first stored for it.
        assert await stored_rows(database_url) == {
            "key-earlier": "dlv_earlier",
            "key-a": "dlv_a",
            "key-c": "dlv_c1",
            "key-b": "dlv_b",
        }
    finally:
        await inbox.close()
    new_a, again, first_c, second_c, new_b = outcomes
    assert (new_a, first_c, new_b) == (None, None, None)
    assert again is not None
    assert again.id == "dlv_earlier"
    assert second_c is not None
    assert second_c.id == "dlv_c1"
    assert again.headers == {"x-github-event": "workflow_run", "x-github-delivery": "key-earlier"}
    assert again.received_at == RECEIVED


async def test_the_batch_insert_is_timed_in_the_query_metric(database: Database) -> None:
    labels = {"dialect": database.dialect}
    name = "dragon_db_query_duration_seconds_count"
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    inbox = GroupCommitInbox(database)
    try:
        await asyncio.gather(*(inbox.add(delivery(f"dlv_{n}", f"key-{n}")) for n in range(3)))
    finally:
        await inbox.close()
    assert (REGISTRY.get_sample_value(name, labels) or 0.0) > before


class _FailsAfterStoring(GroupCommitInbox):
    """An inbox whose driver call stores the batch and then fails, as when the connection
    breaks after the commit, before the answer arrives."""

    async def _store_through_driver(self, sql: Any, batch: list[NewDelivery]) -> Any:
        await super()._store_through_driver(sql, batch)
        raise ConnectionResetError("the answer to the insert was lost")


async def test_a_batch_stored_by_a_failed_first_attempt_still_counts_as_new(
    database: Database, database_url: str
) -> None:
    inbox = _FailsAfterStoring(database)
    try:
        outcomes = await asyncio.gather(
            *(inbox.add(delivery(f"dlv_{n}", f"key-{n}")) for n in range(3))
        )
    finally:
        await inbox.close()
    # Stored once, by the first attempt; the engine's second attempt found them under their
    # own ids, so each is new (202), not a redelivery of itself (200).
    assert outcomes == [None, None, None]
    assert await stored_rows(database_url) == {f"key-{n}": f"dlv_{n}" for n in range(3)}


def refused(delivery_id: str, key: str, *, dialect: str) -> NewDelivery:
    """A delivery the route's checks would not let through and the store refuses: PostgreSQL
    an event type wider than its column (a data error), SQLite (which does not check widths)
    one without an event type (a NOT NULL constraint)."""
    event_type: Any = "e" * 65 if dialect == "postgresql" else None
    return dataclasses.replace(delivery(delivery_id, key), event_type=event_type)


async def test_a_row_the_store_refuses_fails_alone_and_its_batch_neighbours_are_stored(
    database: Database, database_url: str
) -> None:
    inbox = GroupCommitInbox(database)
    try:
        assert await inbox.add(delivery("dlv_earlier", "key-earlier")) is None
        # Queued together, so the writer tries them as one batch first.
        with structlog.testing.capture_logs() as logged:
            outcomes = await asyncio.gather(
                inbox.add(delivery("dlv_a", "key-a")),
                inbox.add(delivery("dlv_again", "key-earlier")),
                inbox.add(refused("dlv_bad", "key-bad", dialect=database.dialect)),
                inbox.add(delivery("dlv_b", "key-b")),
                inbox.add(delivery("dlv_c", "key-c")),
                return_exceptions=True,
            )
        # Each good delivery is committed when its waiter is answered; the refused one is
        # not there at all.
        assert await stored_rows(database_url) == {
            "key-earlier": "dlv_earlier",
            "key-a": "dlv_a",
            "key-b": "dlv_b",
            "key-c": "dlv_c",
        }
    finally:
        await inbox.close()
    new_a, again, bad, new_b, new_c = outcomes
    assert (new_a, new_b, new_c) == (None, None, None)
    assert isinstance(again, Delivery)
    assert again.id == "dlv_earlier"
    # The refused one's sender gets a clear 4xx problem, not a 500 and not a retry-later.
    assert isinstance(bad, ValidationFailed)
    assert bad.code == "delivery_refused"
    answer = dragon_problem(bad, correlation_id="c")
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "retry-after" not in answer.headers
    assert orjson.loads(bytes(answer.body))["code"] == "delivery_refused"
    assert "e" * 65 not in bad.message
    # The refused row is logged by its id, without its body, headers or the database's
    # message (which may quote the row).
    refusals = [entry for entry in logged if entry["event"] == "delivery_refused_by_store"]
    assert [entry["delivery_id"] for entry in refusals] == ["dlv_bad"]
    assert all("completed" not in repr(entry) and "e" * 65 not in repr(entry) for entry in logged)


@pytest.mark.parametrize("value", ["missing", "too_wide"])
async def test_a_lone_refused_delivery_gets_the_clear_error(
    database: Database, database_url: str, value: str
) -> None:
    if value == "too_wide" and database.dialect != "postgresql":
        pytest.skip("SQLite stores a value of any width")
    # A NOT NULL constraint (integrity error) or an over-wide value (data error).
    event_type: Any = None if value == "missing" else "e" * 65
    bad = dataclasses.replace(delivery("dlv_bad", "key-bad"), event_type=event_type)
    inbox = GroupCommitInbox(database)
    try:
        with pytest.raises(ValidationFailed) as refusal:
            await inbox.add(bad)
        # The writer carries on with the next batch.
        assert await inbox.add(delivery("dlv_a", "key-a")) is None
    finally:
        await inbox.close()
    assert refusal.value.code == "delivery_refused"
    assert await stored_rows(database_url) == {"key-a": "dlv_a"}


class _Unreachable(GroupCommitInbox):
    """An inbox whose store cannot be reached (the engine's error for a refused connection)."""

    tries = 0

    async def _store(self, batch: list[NewDelivery]) -> Any:
        self.tries += 1
        raise sa.exc.OperationalError("INSERT", {}, ConnectionRefusedError("refused"))


async def test_an_unreachable_store_fails_the_whole_batch_with_retry_later_once(
    database: Database,
) -> None:
    inbox = _Unreachable(database)
    try:
        outcomes = await asyncio.gather(
            *(inbox.add(delivery(f"dlv_{n}", f"key-{n}")) for n in range(4)),
            return_exceptions=True,
        )
    finally:
        await inbox.close()
    # Not tried again row by row: every sender is told to retry, as the one attempt failed.
    assert inbox.tries == 1
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)
    assert {outcome.code for outcome in outcomes if isinstance(outcome, Unavailable)} == {
        "database_unavailable"
    }
