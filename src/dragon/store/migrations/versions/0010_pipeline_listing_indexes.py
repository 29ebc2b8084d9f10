"""pipeline: incident listing reads its page's ids from an index, whatever the filters

Revision ID: 0010_pipeline_listing_indexes
Revises: 0009_bench_triage_queue
Create Date: 2026-12-03

The listing selects a page's ids first (newest first, below the cursor) and then their rows
(store.repositories.SqlIncidentRepository.find). On PostgreSQL, `ix_incidents_id_filters`
holds every id with the columns the listing filters on by equality, so the ids of any filter
combination come from an index-only scan in id order: when thousands of newer incidents do
not match, PostgreSQL reads their index entries rather than their rows (the planner preferred
the primary key with a filter on every row, which at a million incidents read 20,000 rows for
one page). `ix_incidents_status_severity_id` serves the console's commonest combination
directly. SQLite has no INCLUDE and embedded stores are small: it gets the composite index only.
"""

from __future__ import annotations

from alembic import op

revision = "0010_pipeline_listing_indexes"
down_revision = "0009_bench_triage_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_incidents_status_severity_id", "incidents", ["status", "severity", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_incidents_id_filters ON incidents (id) "
            "INCLUDE (status, severity, source, repo)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_incidents_id_filters")
    op.drop_index("ix_incidents_status_severity_id", table_name="incidents")
