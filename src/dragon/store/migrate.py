"""Schema migrations: upgrade to head, and tell which revision is current and which is head."""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dragon.store.database import ensure_sqlite_directory

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; replicas starting together take turns instead of racing on DDL.
_PG_LOCK_ID = 0x6472_6167_6F6E


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest revision this code knows; read once a process (it loads every revision)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(url: str) -> None:
    ensure_sqlite_directory(url)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade)
            await connection.commit()
    finally:
        await engine.dispose()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
    try:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        exists = await connection.run_sync(lambda c: sa.inspect(c).has_table("alembic_version"))
        if not exists:
            return None
        revision = await connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
        return None if revision is None else str(revision)
