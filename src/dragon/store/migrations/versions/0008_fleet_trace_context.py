"""fleet: incidents and decisions keep the W3C traceparent of the step that made them

Revision ID: 0008_fleet_trace_context
Revises: 0003_ingest_jobs
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_fleet_trace_context"
down_revision = "0003_ingest_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable without a default: adding them rewrites no rows, on SQLite or PostgreSQL.
    op.add_column("incidents", sa.Column("trace_context", sa.String(64)))
    op.add_column("decisions", sa.Column("trace_context", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("trace_context")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("trace_context")
