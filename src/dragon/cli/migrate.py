"""`dragon migrate`: bring the database schema up to date."""

from __future__ import annotations

import asyncio

from dragon.cli.context import load_settings, out
from dragon.store.migrate import upgrade


def migrate() -> None:
    """Bring the database schema up to date."""
    settings = load_settings()
    asyncio.run(upgrade(settings.database_url))
    out.print("database is at the latest schema")
