"""What a notification says, independent of the channel that carries it, and the rules of its
delivery: retry delays (honouring Retry-After), throttling, and masking secrets in targets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from dragon.domain.entities import Decision, Incident
from dragon.domain.errors import DragonError, ErrorKind

# Events the outbox carries. Services name them; routing and channels read them.
INCIDENT_OPENED = "incident.opened"
INCIDENT_UPDATED = "incident.updated"
INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
INCIDENT_RESOLVED = "incident.resolved"
DECISION_REMINDER = "decision.reminder"
DECISION_ESCALATED = "decision.escalated"
RUN_PREFIX = "run."
# A runbook's `notify` step: said on purpose, so it is never throttled.
RUNBOOK_NOTIFY = "runbook.notify"

_MAX_BACKOFF = timedelta(minutes=10)
_MAX_RETRY_AFTER = timedelta(hours=1)


class ChannelFailed(DragonError):
    """A channel did not take a notification. `retryable` says whether trying again may help
    (429, 5xx, network); `retry_after` is the wait the vendor asked for, if it said."""

    kind = ErrorKind.UNAVAILABLE
    default_code = "notification_channel_failed"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True)
class IncidentBrief:
    id: str
    title: str
    severity: str
    status: str
    source: str
    repo: str | None = None
    branch: str | None = None
    environment: str | None = None
    url: str | None = None
    signal_count: int = 1
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DecisionBrief:
    id: str
    title: str
    action: str
    status: str
    risk_score: int
    risk_level: str
    risk_factors: list[dict[str, Any]] = field(default_factory=list)
    rationale: str = ""
    approvals_required: int = 0
    policy_rule: str | None = None
    expires_at: str | None = None

    @property
    def pending(self) -> bool:
        return self.status == "pending_approval"


@dataclass(frozen=True, kw_only=True)
class Notice:
    """Everything a channel needs to render one notification."""

    event: str
    notification_id: str
    occurred_at: str
    incident: IncidentBrief | None = None
    decision: DecisionBrief | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        what = _HEADLINES.get(self.event) or self.event.replace(".", " ").replace("_", " ")
        subject = self.incident.title if self.incident else (self.decision or _NO).title
        severity = f"[{self.incident.severity}] " if self.incident else ""
        said = self.details.get("message") if self.event == RUNBOOK_NOTIFY else None
        if said:
            return f"{severity}{what}: {said} ({subject})"
        return f"{severity}{what}: {subject}"

    @property
    def state(self) -> str:
        """What throttling compares: a change of incident or decision status always notifies."""
        return state_of(self.incident, self.decision, approvals=self.details.get("approvals"))


@dataclass(frozen=True)
class _Nothing:
    title: str = ""


_NO = _Nothing()
_HEADLINES = {
    INCIDENT_OPENED: "Incident opened",
    INCIDENT_UPDATED: "Incident has new signals",
    INCIDENT_ACKNOWLEDGED: "Incident acknowledged",
    INCIDENT_RESOLVED: "Incident resolved",
    "decision.proposed": "Decision proposed",
    "decision.pending_approval": "Decision awaits approval",
    "decision.auto_approved": "Decision approved by policy",
    "decision.approved": "Decision approved",
    "decision.rejected": "Decision rejected",
    "decision.denied": "Decision denied by policy",
    "decision.expired": "Decision expired unapproved",
    DECISION_REMINDER: "Reminder: decision awaits approval",
    DECISION_ESCALATED: "Escalation: decision about to expire unapproved",
    RUNBOOK_NOTIFY: "Runbook",
}


def state_of(
    incident: IncidentBrief | None, decision: DecisionBrief | None, *, approvals: object = None
) -> str:
    """Incident status, decision status and approvals so far: each approval of a quorum is a
    change worth telling, even though the decision stays pending."""
    return (
        f"{incident.status if incident else '-'}/{decision.status if decision else '-'}"
        f"/{approvals if approvals is not None else '-'}"
    )


def subject_of(
    incident: Incident | None,
    decision: Decision | None,
    details: dict[str, Any] | None,
    *,
    escalate: bool = False,
) -> dict[str, Any]:
    """The snapshot stored with an outbox event (JSON), read back by `notice_of`."""
    subject: dict[str, Any] = {"details": dict(details or {})}
    if escalate:
        subject["escalate"] = True
    if incident is not None:
        subject["incident"] = {
            "id": incident.id,
            "title": incident.title,
            "severity": incident.severity.value,
            "status": incident.status.value,
            "source": incident.source,
            "repo": incident.repo,
            "branch": incident.branch,
            "environment": incident.environment,
            "url": incident.url,
            "signal_count": incident.signal_count,
            "labels": dict(incident.labels),
        }
    if decision is not None:
        subject["decision"] = {
            "id": decision.id,
            "title": decision.title,
            "action": decision.action,
            "status": decision.status.value,
            "risk_score": decision.risk_score,
            "risk_level": decision.risk_level.value,
            "risk_factors": list(decision.risk_factors),
            "rationale": decision.rationale,
            "approvals_required": decision.approvals_required,
            "policy_rule": decision.policy_rule,
            "expires_at": decision.expires_at.isoformat() if decision.expires_at else None,
        }
    return subject


def notice_of(
    *, event: str, notification_id: str, occurred_at: datetime, subject: dict[str, Any]
) -> Notice:
    incident = subject.get("incident")
    decision = subject.get("decision")
    return Notice(
        event=event,
        notification_id=notification_id,
        occurred_at=occurred_at.isoformat(),
        incident=IncidentBrief(**incident) if incident else None,
        decision=DecisionBrief(**decision) if decision else None,
        details=dict(subject.get("details") or {}),
    )


def retry_delay(attempts: int, *, retry_after: float | None) -> timedelta:
    """Exponential backoff from 2 s, capped at ten minutes; a vendor's Retry-After wins when it
    asks for longer (up to an hour, so a bad header cannot park a notification forever)."""
    delay = min(timedelta(seconds=2 ** max(1, attempts)), _MAX_BACKOFF)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(timedelta(seconds=retry_after), _MAX_RETRY_AFTER))
    return delay


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Retry-After is seconds or an HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def is_throttled(
    *,
    last_sent_at: datetime | None,
    last_state: str | None,
    state: str,
    now: datetime,
    interval: timedelta,
) -> bool:
    """The same incident notifies a channel at most once per interval, unless its state moved."""
    if last_sent_at is None or last_state != state:
        return False
    return now - last_sent_at < interval


_SECRET_PATH = re.compile(r"[^/]{12,}")


def mask_url(url: str) -> str:
    """A channel URL fit to show: scheme and host kept, credentials, query and any long path
    segment (webhook URLs carry their secret there) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    host = parts.hostname or "***"
    if parts.port:
        host = f"{host}:{parts.port}"
    path = "/".join("***" if _SECRET_PATH.fullmatch(seg) else seg for seg in parts.path.split("/"))
    return f"{parts.scheme}://{host}{path}" + ("?***" if parts.query else "")


@dataclass(frozen=True, kw_only=True)
class ChatAction:
    """One approval button press, as the chat platform reported it (its signature verified)."""

    decision_id: str
    verdict: str  # "approve" | "reject"
    user_id: str
    user_name: str = ""
    email: str | None = None
    channel_id: str | None = None
