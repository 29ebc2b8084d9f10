"""Holding part of the store from another session, so the app's next write waits behind it: a
table (PostgreSQL) or the whole file (SQLite, which locks no finer)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from dragon.store.database import Database


@contextlib.asynccontextmanager
async def table_locked(database: Database, table: sa.Table) -> AsyncIterator[None]:
    """`table` locked exclusively until the block ends, then released with nothing written."""
    if database.dialect == "postgresql":
        async with database.writer.connect() as connection:
            name = connection.dialect.identifier_preparer.format_table(table)
            await connection.execute(sa.text(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"))
            yield
            await connection.rollback()
        return
    path = make_url(database.url).database
    assert path
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()
