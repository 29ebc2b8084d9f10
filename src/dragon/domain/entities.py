"""Dragon's entities as plain dataclasses; the store maps them to tables without changing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dragon.domain.enums import (
    ApprovalChannel,
    DecisionStatus,
    DeliveryStatus,
    IncidentStatus,
    NotificationStatus,
    PrincipalKind,
    RiskLevel,
    Role,
    Severity,
    Verdict,
)


@dataclass(kw_only=True, eq=False)
class Principal:
    id: str
    name: str
    role: Role
    kind: PrincipalKind = PrincipalKind.USER
    email: str | None = None
    created_at: datetime
    disabled_at: datetime | None = None


@dataclass(kw_only=True, eq=False)
class ApiKey:
    id: str
    principal_id: str
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(kw_only=True, eq=False)
class Incident:
    id: str
    title: str
    severity: Severity
    status: IncidentStatus = IncidentStatus.OPEN
    source: str
    description: str = ""
    repo: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    environment: str | None = None
    url: str | None = None
    fingerprint: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    signal_count: int = 1
    created_by: str
    created_at: datetime
    updated_at: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None


@dataclass(kw_only=True, eq=False)
class Decision:
    id: str
    incident_id: str | None
    title: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    rationale: str = ""
    impact: str = ""
    risk_score: int
    risk_level: RiskLevel
    risk_factors: list[dict[str, Any]] = field(default_factory=list)
    confidence: float | None = None
    proposer_id: str
    proposer_name: str
    proposer_kind: PrincipalKind
    provenance: dict[str, Any] = field(default_factory=dict)
    repo: str | None = None
    branch: str | None = None
    environment: str | None = None
    source: str | None = None
    status: DecisionStatus = DecisionStatus.PROPOSED
    policy_version: str | None = None
    policy_rule: str | None = None
    policy_reason: str = ""
    approvals_required: int = 0
    approver_roles: list[str] = field(default_factory=list)
    expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None = None


@dataclass(kw_only=True, eq=False)
class Approval:
    id: str
    decision_id: str
    principal_id: str
    principal_name: str
    verdict: Verdict
    justification: str
    via: ApprovalChannel
    created_at: datetime


@dataclass(kw_only=True, eq=False)
class PolicyVersion:
    id: str
    version: str
    name: str
    source: str
    active: bool
    created_at: datetime
    created_by: str


@dataclass(kw_only=True, eq=False)
class AuditEvent:
    seq: int
    occurred_at: datetime
    actor_id: str
    actor_name: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    client_address: str | None = None
    prev_hash: str
    hash: str


@dataclass(kw_only=True, eq=False)
class Delivery:
    """One inbound webhook or API call exactly as received, and how processing went."""

    id: str
    source: str
    delivery_key: str
    event_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    received_at: datetime
    processed_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True, eq=False)
class Signal:
    id: str
    delivery_id: str
    source: str
    kind: str
    signal_key: str
    fingerprint: str
    title: str
    severity: Severity
    occurred_at: datetime
    repo: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    pipeline: str | None = None
    job: str | None = None
    url: str | None = None
    environment: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    log_excerpt: str = ""
    incident_id: str | None = None
    created_at: datetime


@dataclass(kw_only=True, eq=False)
class IncidentLink:
    incident_id: str
    linked_id: str
    reason: str
    created_at: datetime


@dataclass(kw_only=True, eq=False)
class NotificationEvent:
    """The outbox: one state change worth telling people about, written in the same
    transaction as the change. `subject` is a snapshot of the incident and decision."""

    id: str
    event: str
    incident_id: str | None = None
    decision_id: str | None = None
    subject: dict[str, Any] = field(default_factory=dict)
    created_at: datetime
    routed_at: datetime | None = None


@dataclass(kw_only=True, eq=False)
class Notification:
    """One event's delivery to one channel, with its retries."""

    id: str
    event_id: str
    event: str
    incident_id: str | None = None
    decision_id: str | None = None
    channel: str
    route: str
    status: NotificationStatus = NotificationStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    state: str = ""
    external_ref: str | None = None
    created_at: datetime
    sent_at: datetime | None = None
