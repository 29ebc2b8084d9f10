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
    RunStatus,
    Severity,
    TriageStatus,
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
    # W3C traceparent of the processing that opened it: triage continues that trace.
    trace_context: str | None = None


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
    # W3C traceparent of the triage that proposed it: its run continues that trace.
    trace_context: str | None = None


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


@dataclass(frozen=True, kw_only=True)
class TriageClaim:
    """A worker's claim on the triage of the incidents one transaction opens, taken with them:
    their triage rows are written running under this token and lease, so the worker that
    triages them next needs no claim of its own (docs/decisions/0025)."""

    token: str
    lease_until: datetime


@dataclass(kw_only=True, eq=False)
class TriageRun:
    """One incident's automatic triage. The row is the claim: one per incident, taken under a
    lease by one worker at a time, finished in the same transaction as its decision."""

    incident_id: str
    status: TriageStatus
    token: str
    attempts: int = 0
    lease_until: datetime
    decision_id: str | None = None
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime


@dataclass(kw_only=True, eq=False)
class Run:
    """One execution of a decision's action: queued -> running -> succeeded | failed.

    `idempotency_key` is derived from the decision and unique in the store, so a decision has
    at most one run however many workers race for it. `log` holds the step-by-step record,
    `intent` the remote call that was about to be made (kept across a crash)."""

    id: str
    decision_id: str
    idempotency_key: str
    action: str
    status: RunStatus = RunStatus.QUEUED
    incident_id: str | None = None
    repo: str | None = None
    dry_run: bool = False
    attempts: int = 0
    max_attempts: int = 5
    next_attempt_at: datetime
    lease_expires_at: datetime | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # After an action on a CI failure: "fixed" or "did_not_help", from the next CI result.
    outcome: str | None = None
    outcome_at: datetime | None = None


@dataclass(kw_only=True, eq=False)
class Runbook:
    """One immutable version of a registered runbook manifest."""

    id: str
    name: str
    version: str
    description: str
    manifest: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(kw_only=True, eq=False)
class ActionsSwitch:
    """The admin's kill switch for every action, stored so every worker process sees it."""

    name: str
    enabled: bool
    reason: str = ""
    changed_by: str
    changed_at: datetime


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
