"""bench: text search over incidents by trigram index (PostgreSQL), so `q=` stays fast at scale

Revision ID: 0008_bench_incident_indexes
Revises: 0003_ingest_jobs
Create Date: 2026-12-03

The listing's `q` filter is `lower(title) LIKE '%text%' OR lower(description) LIKE ...`; with a
million incidents and a rare text, PostgreSQL read every row (600 ms and more). pg_trgm's GIN
indexes on exactly those expressions answer it from the index. pg_trgm ships with PostgreSQL
and is a trusted extension (a database owner may create it). SQLite keeps its scan: embedded
installations are small.
"""

from __future__ import annotations

from alembic import op

revision = "0008_bench_incident_indexes"
down_revision = "0008_fleet_trace_context"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE INDEX ix_incidents_title_trgm ON incidents USING gin (lower(title) gin_trgm_ops)"
    )
    op.execute(
        "CREATE INDEX ix_incidents_description_trgm ON incidents "
        "USING gin (lower(description) gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_incidents_description_trgm")
    op.execute("DROP INDEX IF EXISTS ix_incidents_title_trgm")
    # The extension stays: other objects may use it, and it costs nothing unused.
