"""The schema, and the imperative mapping of the domain's dataclasses onto it.

Domain classes stay free of SQLAlchemy; this module is the only place that knows both.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import configure_mappers, registry

from dragon.domain.entities import (
    ActionsSwitch,
    ApiKey,
    Approval,
    AuditEvent,
    Decision,
    Delivery,
    Incident,
    IncidentLink,
    Notification,
    NotificationEvent,
    PolicyVersion,
    Principal,
    Run,
    Runbook,
    Signal,
    TriageRun,
)
from dragon.domain.enums import (
    ApprovalChannel,
    DecisionStatus,
    DeliveryStatus,
    IncidentStatus,
    NotificationStatus,
    PrincipalKind,
    RiskLevel,
    Role,
    RunStatus,
    Severity,
    TriageStatus,
    Verdict,
)
from dragon.store.coltypes import EnumText, UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
mapper = registry(metadata=metadata)

ID = sa.String(40)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("email", sa.String(320)),
    sa.Column("role", EnumText(Role), nullable=False),
    sa.Column("kind", EnumText(PrincipalKind), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("disabled_at", UTCDateTime()),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("principal_id", ID, sa.ForeignKey("principals.id"), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime()),
    sa.Column("revoked_at", UTCDateTime()),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("severity", EnumText(Severity), nullable=False),
    sa.Column("status", EnumText(IncidentStatus), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("repo", sa.String(200)),
    sa.Column("branch", sa.String(255)),
    sa.Column("commit_sha", sa.String(64)),
    sa.Column("environment", sa.String(64)),
    sa.Column("url", sa.String(2048)),
    sa.Column("fingerprint", sa.String(128)),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("signal_count", sa.Integer, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("acknowledged_at", UTCDateTime()),
    sa.Column("acknowledged_by", sa.String(128)),
    sa.Column("resolved_at", UTCDateTime()),
    sa.Column("resolved_by", sa.String(128)),
    sa.Column("trace_context", sa.String(64)),
    sa.Index("ix_incidents_status_id", "status", "id"),
    sa.Index("ix_incidents_severity_id", "severity", "id"),
    sa.Index("ix_incidents_status_severity_id", "status", "severity", "id"),
    sa.Index("ix_incidents_created_at", "created_at"),
    sa.Index("ix_incidents_source_id", "source", "id"),
    sa.Index("ix_incidents_repo_id", "repo", "id"),
    sa.Index("ix_incidents_fingerprint", "fingerprint"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("incident_id", ID, sa.ForeignKey("incidents.id"), index=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("impact", sa.Text, nullable=False),
    sa.Column("risk_score", sa.Integer, nullable=False),
    sa.Column("risk_level", EnumText(RiskLevel), nullable=False),
    sa.Column("risk_factors", sa.JSON, nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("proposer_id", sa.String(128), nullable=False),
    sa.Column("proposer_name", sa.String(128), nullable=False),
    sa.Column("proposer_kind", EnumText(PrincipalKind), nullable=False),
    sa.Column("provenance", sa.JSON, nullable=False),
    sa.Column("repo", sa.String(200)),
    sa.Column("branch", sa.String(255)),
    sa.Column("environment", sa.String(64)),
    sa.Column("source", sa.String(32)),
    sa.Column("status", EnumText(DecisionStatus), nullable=False),
    sa.Column("policy_version", sa.String(80)),
    sa.Column("policy_rule", sa.String(64)),
    sa.Column("policy_reason", sa.Text, nullable=False),
    sa.Column("approvals_required", sa.Integer, nullable=False),
    sa.Column("approver_roles", sa.JSON, nullable=False),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("decided_at", UTCDateTime()),
    sa.Column("trace_context", sa.String(64)),
    sa.Index("ix_decisions_status_id", "status", "id"),
    sa.Index("ix_decisions_status_action_id", "status", "action", "id"),
    sa.Index("ix_decisions_status_expires_at", "status", "expires_at"),
    sa.Index("ix_decisions_created_at", "created_at"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("decision_id", ID, sa.ForeignKey("decisions.id"), nullable=False),
    sa.Column("principal_id", sa.String(128), nullable=False),
    sa.Column("principal_name", sa.String(128), nullable=False),
    sa.Column("verdict", EnumText(Verdict), nullable=False),
    sa.Column("justification", sa.Text, nullable=False),
    sa.Column("via", EnumText(ApprovalChannel), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # One verdict per principal per decision, enforced by the database as well as the rules.
    sa.UniqueConstraint("decision_id", "principal_id", name="uq_approvals_decision_principal"),
)

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("version", sa.String(80), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("actor_id", sa.String(128), nullable=False),
    sa.Column("actor_name", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("target_type", sa.String(32), nullable=False),
    sa.Column("target_id", sa.String(128), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("correlation_id", sa.String(128)),
    sa.Column("client_address", sa.String(64)),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_events_target", "target_type", "target_id"),
)

# The chain's tip, one row. Appending locks it, which serialises appends across processes, and
# keeping it apart from the events lets verification notice deleted newest events.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("delivery_key", sa.String(200), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.JSON, nullable=False),
    sa.Column("status", EnumText(DeliveryStatus), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("processed_at", UTCDateTime()),
    sa.Column("result", sa.JSON, nullable=False),
    # The inbox's exactly-once guarantee: a redelivery finds its original here.
    sa.UniqueConstraint("source", "delivery_key", name="uq_deliveries_source_key"),
    sa.Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("delivery_id", ID, sa.ForeignKey("deliveries.id"), nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("signal_key", sa.String(300), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("severity", EnumText(Severity), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("repo", sa.String(200)),
    sa.Column("branch", sa.String(255)),
    sa.Column("commit_sha", sa.String(64)),
    sa.Column("pipeline", sa.String(200)),
    sa.Column("job", sa.String(200)),
    sa.Column("url", sa.String(2048)),
    sa.Column("environment", sa.String(64)),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("log_excerpt", sa.Text, nullable=False),
    sa.Column("incident_id", ID, sa.ForeignKey("incidents.id"), index=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source", "signal_key", name="uq_signals_source_key"),
)

incident_links = sa.Table(
    "incident_links",
    metadata,
    sa.Column("incident_id", ID, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("linked_id", ID, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# One row per incident: the primary key is what makes triage happen once per incident.
triage_runs = sa.Table(
    "triage_runs",
    metadata,
    sa.Column("incident_id", ID, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("status", EnumText(TriageStatus), nullable=False),
    sa.Column("token", sa.String(40), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("lease_until", UTCDateTime(), nullable=False),
    sa.Column("decision_id", ID, sa.ForeignKey("decisions.id"), unique=True),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_triage_runs_status_lease_until", "status", "lease_until"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("decision_id", ID, sa.ForeignKey("decisions.id"), nullable=False, index=True),
    # At most once: one run per decision, whatever races for it.
    sa.Column("idempotency_key", sa.String(80), nullable=False, unique=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("status", EnumText(RunStatus), nullable=False),
    sa.Column("incident_id", ID, sa.ForeignKey("incidents.id"), index=True),
    sa.Column("repo", sa.String(200)),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("lease_expires_at", UTCDateTime()),
    sa.Column("log", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("outcome", sa.String(32)),
    sa.Column("outcome_at", UTCDateTime()),
    sa.Index("ix_runs_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_runs_repo_started_at", "repo", "started_at"),
)

runbooks = sa.Table(
    "runbooks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("manifest", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    # Versions are immutable: registering the same name and version again is refused.
    sa.UniqueConstraint("name", "version", name="uq_runbooks_name_version"),
)

actions_switches = sa.Table(
    "actions_switches",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=False),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
)

notification_events = sa.Table(
    "notification_events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("incident_id", ID),
    sa.Column("decision_id", ID),
    sa.Column("subject", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("routed_at", UTCDateTime()),
    # Only the unrouted events' ids (migration 0012): the router's claim reads no routed ones.
    sa.Index(
        "ix_notification_events_unrouted",
        "id",
        sqlite_where=sa.text("routed_at IS NULL"),
        postgresql_where=sa.text("routed_at IS NULL"),
    ),
    sa.Index("ix_notification_events_decision_event", "decision_id", "event"),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("event_id", ID, sa.ForeignKey("notification_events.id"), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("incident_id", ID),
    sa.Column("decision_id", ID),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("status", EnumText(NotificationStatus), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("external_ref", sa.String(200)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
    sa.Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    sa.Index("ix_notifications_incident_channel", "incident_id", "channel", "id"),
)

# At most one unresolved incident per fingerprint, enforced by the database itself.
sa.Index(
    "uq_incidents_open_fingerprint",
    incidents.c.fingerprint,
    unique=True,
    sqlite_where=incidents.c.status != "resolved",
    postgresql_where=incidents.c.status != "resolved",
)
sa.Index("ix_incidents_commit_sha", incidents.c.commit_sha)

for cls, table in (
    (Principal, principals),
    (ApiKey, api_keys),
    (Incident, incidents),
    (Decision, decisions),
    (Approval, approvals),
    (PolicyVersion, policy_versions),
    (AuditEvent, audit_events),
    (Delivery, deliveries),
    (Signal, signals),
    (IncidentLink, incident_links),
    (TriageRun, triage_runs),
    (Run, runs),
    (Runbook, runbooks),
    (ActionsSwitch, actions_switches),
    (NotificationEvent, notification_events),
    (Notification, notifications),
):
    mapper.map_imperatively(cls, table)

# Configure now rather than at the first query: entities built before any query (the SYSTEM
# principal, say) must read their attributes like any other.
configure_mappers()
