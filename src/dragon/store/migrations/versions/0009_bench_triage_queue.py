"""bench: every unresolved incident without a triage row gets a pending one

Revision ID: 0009_bench_triage_queue
Revises: 0008_bench_incident_indexes
Create Date: 2026-12-03

Incidents are now stored with a pending triage row (store.triage), so the triage worker finds
its work in ix_triage_runs_status_lease_until instead of anti-joining every incident with
triage_runs (linear in all incidents, on every pass). This gives the incidents stored before
that their row, so none is left untriaged. Downgrading removes only rows no worker has taken
(pending): the older code finds those incidents by their missing row, as it always did.
"""

from __future__ import annotations

from alembic import op

revision = "0009_bench_triage_queue"
down_revision = "0008_bench_incident_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO triage_runs (incident_id, status, token, attempts, lease_until, "
        "created_at, updated_at) "
        "SELECT i.id, 'pending', '', 0, i.created_at, i.created_at, i.created_at "
        "FROM incidents i LEFT JOIN triage_runs t ON t.incident_id = i.id "
        "WHERE t.incident_id IS NULL AND i.status <> 'resolved'"
    )


def downgrade() -> None:
    op.execute("DELETE FROM triage_runs WHERE status = 'pending'")
