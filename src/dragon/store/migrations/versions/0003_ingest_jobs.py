"""procrastinate's job tables on PostgreSQL (delivery processing runs on them there)

Revision ID: 0003_ingest_jobs
Revises: 0007_console
Create Date: 2026-12-02

The schema is the one the pinned procrastinate release ships (constraints.txt); a later
procrastinate upgrade brings its own migration scripts, applied in a migration of ours.
SQLite has no job engine: there the inbox itself is the queue (docs/decisions/0006, 0011).
"""

from __future__ import annotations

from typing import Any

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0003_ingest_jobs"
down_revision = "0007_console"
branch_labels = None
depends_on = None

# Every object procrastinate creates is named procrastinate_*: drop them all.
_DROP = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables
             WHERE schemaname = current_schema() AND left(tablename, 14) = 'procrastinate_'
    LOOP EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename); END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND left(p.proname, 14) = 'procrastinate_'
    LOOP EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.signature); END LOOP;
    FOR r IN SELECT t.typname FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = current_schema() AND left(t.typname, 14) = 'procrastinate_'
               AND t.typtype IN ('c', 'e')
    LOOP EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname); END LOOP;
END $$;
"""


def _run_script(sql: str) -> None:
    """Run a multi-statement script as it is: on the driver's own connection, in the
    migration's transaction (SQLAlchemy's text() would read its colons as parameters)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("SELECT 1")  # the migration's transaction is open on this connection

    async def script(driver: Any) -> None:
        await driver.execute(sql)

    bind.connection.dbapi_connection.run_async(script)  # type: ignore[union-attr]


def upgrade() -> None:
    _run_script(SchemaManager.get_schema())


def downgrade() -> None:
    _run_script(_DROP)
