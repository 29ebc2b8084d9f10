"""The exactly-once check of a processing batch (which of its signals are stored already) asks
the unique (source, signal key) index for both columns, whatever the planner knows of the
table; the pairs it finds are checked on every store."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.store.database import connect
from dragon.store.inbox import known_signals
from dragon.store.tables import deliveries, signals
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from tests.conftest import POSTGRES_URL
from tests.integration.test_triage_queue import _migrate, scratch_url  # noqa: F401

NOW = datetime(2026, 12, 1, tzinfo=UTC)
STORED = 3000


def _signal(n: int, *, source: str) -> dict[str, object]:
    return {
        "id": f"sig_{source}_{n:08d}",
        "delivery_id": "dlv_seed",
        "source": source,
        "kind": "ci_failure",
        "signal_key": f"workflow_run:{100_000 + n}:1:failure",
        "fingerprint": f"fp-{n}",
        "title": "build failed",
        "severity": "SEV3",
        "occurred_at": NOW,
        "labels": {},
        "log_excerpt": "",
        "created_at": NOW,
    }


def _delivery() -> dict[str, object]:
    return {
        "id": "dlv_seed",
        "source": "github",
        "delivery_key": "seed",
        "event_type": "workflow_run",
        "body": b"{}",
        "headers": {},
        "status": "processed",
        "attempts": 1,
        "next_attempt_at": NOW,
        "received_at": NOW,
        "result": {},
    }


async def test_stored_signals_are_found_by_source_and_key_and_no_other_pair(
    database_url: str,
) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.insert(deliveries), [_delivery()])
            await connection.execute(
                sa.insert(signals),
                [_signal(n, source=s) for n, s in ((1, "github"), (2, "github"), (1, "gitlab"))],
            )
    finally:
        await engine.dispose()
    key = "workflow_run:{}:1:failure".format
    asked = {
        ("github", key(100_001)),
        ("github", key(100_002)),
        ("github", key(100_003)),  # not stored
        ("gitlab", key(100_001)),
        ("gitlab", key(100_002)),  # stored for github only
        ("jenkins", key(100_001)),
    }

    database = connect(database_url, pool_size=1)
    try:
        async with SqlUnitOfWorkFactory(database)() as uow:
            found = await uow.signals.known(asked)
    finally:
        await database.dispose()

    assert found == {("github", key(100_001)), ("github", key(100_002)), ("gitlab", key(100_001))}


async def test_a_batch_of_one_source_is_looked_up_by_both_index_columns_in_a_young_table(
    scratch_url: str,  # noqa: F811 - the fixture
) -> None:
    if not POSTGRES_URL:
        return  # the plan is PostgreSQL's; the pairs found are checked above on every store
    engine = create_async_engine(scratch_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_migrate, "upgrade", "head")
            # Never analyzed, as in the first hours of a store: what the planner then knows.
            await connection.execute(
                sa.text("ALTER TABLE signals SET (autovacuum_enabled = false)")
            )
            await connection.execute(sa.insert(deliveries), [_delivery()])
            await connection.execute(
                sa.insert(signals), [_signal(n, source="github") for n in range(STORED)]
            )
        batch = {("github", f"workflow_run:{100_000 + n}:1:failure") for n in range(0, 40, 2)}
        lookup = known_signals(batch, dialect="postgresql")
        assert isinstance(lookup, sa.TextClause)
        async with engine.connect() as connection:
            found = await connection.execute(
                sa.text(f"EXPLAIN ANALYZE {lookup.text}"), lookup.compile().params
            )
            plan = "\n".join(row[0] for row in found)
    finally:
        await engine.dispose()

    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert conditions, plan
    assert all("signal_key" in line for line in conditions), plan
    assert "Rows Removed by Filter" not in plan, plan
    assert "Seq Scan on signals" not in plan, plan
    assert "Hash" not in plan, plan
