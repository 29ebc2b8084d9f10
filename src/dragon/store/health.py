"""Readiness of the store: reachable, and migrated to the revision this code expects."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from dragon.store.database import Database
from dragon.store.migrate import current_revision, head_revision


class SqlStoreHealth:
    def __init__(self, database: Database, *, timeout: float = 2.0) -> None:
        self._database = database
        self._timeout = timeout
        self._head: str | None = None
        self._head_read = False

    async def check(self) -> dict[str, str]:
        try:
            async with asyncio.timeout(self._timeout):
                async with self._database.reader.connect() as connection:
                    await connection.execute(sa.text("SELECT 1"))
                current = await current_revision(self._database.reader)
        except TimeoutError:
            return {"database": "timed out", "migrations": "unknown"}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", named below
            return {"database": f"unreachable ({type(exc).__name__})", "migrations": "unknown"}
        head = await self._expected_head()
        if current == head:
            migrations = "ok"
        elif current is None:
            migrations = "schema missing; run `dragon migrate`"
        else:
            migrations = f"schema at {current}, code expects {head}; run `dragon migrate`"
        return {"database": "ok", "migrations": migrations}

    async def _expected_head(self) -> str | None:
        """Read at the first check, not when the services are built, so the commands that never
        check the store (most of the CLI) never load the revisions; off the event loop, since
        that reads every revision file."""
        if not self._head_read:
            self._head = await asyncio.to_thread(head_revision)
            self._head_read = True
        return self._head
