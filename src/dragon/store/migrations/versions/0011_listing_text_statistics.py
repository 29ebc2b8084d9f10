"""listing: a 1,000-value statistics sample for the incident text indexes' expressions

Revision ID: 0011_listing_text_statistics
Revises: 0010_pipeline_listing_indexes
Create Date: 2026-12-04

The listing's text search (`q`) on PostgreSQL is planned, and narrowed (store.incident_search,
docs/decisions/0021), by the sample ANALYZE keeps for lower(title) and lower(description), the
expressions of the trigram indexes. At the default 100 values a text in 1% of the incidents is
missing from the sample one time in three; the planner then takes it for rare and reads every
match through the trigram index (10,000 rows, 45-65 ms at a million incidents) instead of
walking the newest ids (5,000 rows, 8 ms). At 1,000 values a 1% text is all but always in it
(and a 0.1% one usually). ANALYZE samples 300 rows per value, so incidents' ANALYZE reads up to
300,000 rows instead of 30,000. SQLite has neither the indexes nor the statistics.
"""

from __future__ import annotations

from alembic import op

revision = "0011_listing_text_statistics"
down_revision = "0010_pipeline_listing_indexes"
branch_labels = None
depends_on = None

_INDEXES = ("ix_incidents_title_trgm", "ix_incidents_description_trgm")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in _INDEXES:
        op.execute(f"ALTER INDEX {index} ALTER COLUMN 1 SET STATISTICS 1000")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in _INDEXES:
        op.execute(f"ALTER INDEX {index} ALTER COLUMN 1 SET STATISTICS -1")
