"""triage runs: one automatic triage per incident

Revision ID: 0004_triage
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_triage"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triage_runs",
        sa.Column("incident_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_triage_runs_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_triage_runs_decision_id_decisions")
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_triage_runs")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_triage_runs_decision_id")),
    )
    with op.batch_alter_table("triage_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_triage_runs_status_lease_until", ["status", "lease_until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("triage_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_triage_runs_status_lease_until")
    op.drop_table("triage_runs")
