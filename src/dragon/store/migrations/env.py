"""Alembic environment: runs on the connection `dragon migrate` hands it, or on the URL in
alembic.ini's `sqlalchemy.url` / DRAGON_DATABASE_URL when a developer runs alembic directly."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.store.tables import metadata

config = context.config


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    url = os.environ.get("DRAGON_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    engine = create_async_engine(str(url))
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    asyncio.run(run_standalone())
