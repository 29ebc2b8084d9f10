"""Signals: one delivery normalized into the facts Dragon correlates into incidents.

Every vendor adapter in dragon.integrations turns its payload into SignalDraft values; nothing
downstream knows which vendor sent them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from dragon.domain.enums import Severity


class SignalKind(StrEnum):
    CI_FAILURE = "ci_failure"
    CI_RECOVERY = "ci_recovery"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"

    @property
    def is_recovery(self) -> bool:
        return self in (SignalKind.CI_RECOVERY, SignalKind.ALERT_RESOLVED)


@dataclass(frozen=True, kw_only=True)
class SignalDraft:
    """A normalized signal before it is stored. `signal_key` is unique per source: the same
    vendor event delivered twice (or in two deliveries) yields the same key."""

    source: str
    kind: SignalKind
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


@dataclass(frozen=True, kw_only=True)
class Normalized:
    """What one delivery means: its event type, the signals in it, or why it was ignored."""

    event_type: str
    signals: tuple[SignalDraft, ...] = ()
    ignored: str | None = None


@dataclass(frozen=True, kw_only=True)
class NormalizeOptions:
    """Deployment choices that shape normalization."""

    alert_grouping_labels: tuple[str, ...] = ("alertname", "service", "namespace")
    default_severity_ci: Severity = Severity.SEV3


def fingerprint(*parts: str | None) -> str:
    """Stable grouping key: the same parts always give the same fingerprint."""
    joined = "\x1f".join(p or "" for p in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def ci_fingerprint(
    *, provider: str, repo: str | None, pipeline: str | None, job: str | None, branch: str | None
) -> str:
    """CI failures group by provider, repository, workflow or pipeline, job, and branch."""
    return fingerprint("ci", provider, repo, pipeline, job, branch)


def alert_fingerprint(*, alertname: str, labels: dict[str, str], grouping: tuple[str, ...]) -> str:
    """Alerts group by alert name and the configured grouping labels."""
    return fingerprint("alert", alertname, *(f"{k}={labels.get(k, '')}" for k in grouping))
