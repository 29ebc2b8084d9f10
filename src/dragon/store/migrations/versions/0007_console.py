"""console: index incidents and decisions by creation time for the dashboard's window

Revision ID: 0007_console
Revises: 0006_notifications
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007_console"
down_revision = "0006_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_incidents_created_at", "incidents", ["created_at"])
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_created_at", table_name="decisions")
    op.drop_index("ix_incidents_created_at", table_name="incidents")
