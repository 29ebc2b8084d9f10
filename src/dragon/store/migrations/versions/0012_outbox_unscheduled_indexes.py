"""sustain: the outbox's unrouted events and the runs scheduler's decisions from indexes that
do not grow with what is done

Revision ID: 0012_outbox_unscheduled_indexes
Revises: 0011_listing_text_statistics
Create Date: 2026-12-04

The router claims the oldest unrouted notification events (`routed_at IS NULL ORDER BY id`,
store.notifications.claim_unrouted). Through `ix_notification_events_routed_at_id` PostgreSQL
read the index entries of every event routed since the last vacuum (an update leaves the old
`(NULL, id)` entry behind) and, as a bitmap scan, visited each one's heap page: 7 ms per pass
at 16,000 events, growing with every delivery. `ix_notification_events_unrouted` holds only the
ids of unrouted events, in the query's order, so a pass reads an index range of its own size
(an index scan, which marks the entries of routed rows dead as it passes them). Nothing else
filters on `routed_at`, so the old index goes.

The runs scheduler's `unscheduled` (approved decisions of the actions it runs, without a run)
went through `ix_decisions_status_id` and filtered on the action: every auto-approved
notify-owners decision, which never gets a run, was read on every tick (8 ms at 8,000).
`ix_decisions_status_action_id` narrows by both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_outbox_unscheduled_indexes"
down_revision = "0011_listing_text_statistics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_notification_events_routed_at_id", table_name="notification_events")
    unrouted = sa.text("routed_at IS NULL")
    op.create_index(
        "ix_notification_events_unrouted",
        "notification_events",
        ["id"],
        sqlite_where=unrouted,
        postgresql_where=unrouted,
    )
    op.create_index("ix_decisions_status_action_id", "decisions", ["status", "action", "id"])


def downgrade() -> None:
    op.drop_index("ix_decisions_status_action_id", table_name="decisions")
    op.drop_index("ix_notification_events_unrouted", table_name="notification_events")
    op.create_index(
        "ix_notification_events_routed_at_id", "notification_events", ["routed_at", "id"]
    )
