"""PostgreSQL connections are pinged only after sitting idle in the pool (store.database):
one whose server side went away meanwhile is replaced before a transaction gets it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dragon.store import database
from dragon.store.database import connect
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="the pool's ping is PostgreSQL's")


async def test_an_idle_connection_whose_backend_was_terminated_is_replaced_before_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)  # every reuse is "idle"
    store = connect(POSTGRES_URL, pool_size=1)
    other = connect(POSTGRES_URL, pool_size=1)
    try:
        async with store.writer.connect() as conn:
            first = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        async with other.writer.begin() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        # The pool's only connection is dead: the ping finds out and another is opened.
        async with store.writer.connect() as conn:
            second = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await store.dispose()
        await other.dispose()


async def test_a_connection_reused_at_once_is_not_pinged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)
    store = connect(POSTGRES_URL, pool_size=1)
    pings: list[object] = []
    dialect = store.writer.sync_engine.dialect
    monkeypatch.setattr(dialect, "do_ping", lambda conn: pings.append(conn) or True)
    try:
        for _ in range(3):
            async with store.writer.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        assert pings == []
    finally:
        await store.dispose()
