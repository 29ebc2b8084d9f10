"""The closed vocabularies of Dragon's domain (ARCHITECTURE.md, "Domain words")."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DecisionStatus(StrEnum):
    PROPOSED = "proposed"
    PENDING_APPROVAL = "pending_approval"
    AUTO_APPROVED = "auto_approved"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalChannel(StrEnum):
    API = "api"
    WEB = "web"
    SLACK = "slack"


class Role(StrEnum):
    """Roles are ordered: each one can do everything the ones before it can."""

    VIEWER = "viewer"
    DEVELOPER = "developer"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_ORDER.index(self)

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_ORDER = [Role.VIEWER, Role.DEVELOPER, Role.APPROVER, Role.ADMIN]


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE = "service"
    ANALYZER = "analyzer"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class SignalSource(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    JENKINS = "jenkins"
    ALERTMANAGER = "alertmanager"
    API = "api"


class TriageStatus(StrEnum):
    """An incident's triage: waiting for its first attempt (written with the incident, so
    finding work is an index range, not a scan of every incident), running under a worker's
    lease (or waiting to be retried), done with its decision, or failed for good after its
    last attempt."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    IGNORED = "ignored"
    DEAD = "dead"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class NotificationStatus(StrEnum):
    """One channel's copy of a notification: pending → sent | failed; or throttled/skipped."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    THROTTLED = "throttled"
    SKIPPED = "skipped"
