"""The dashboard's figures, computed from plain rows so every store gives the same answers.

MTTA and MTTR are means over incidents opened in the window; the auto-remediation rate is the
share of the window's decisions that went ahead without a person (the policy auto-approved
them); approval latency is the mean time from proposal to the verdict that settled a decision
which needed approvals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from dragon.domain.enums import DecisionStatus, Severity

WINDOW = timedelta(days=30)
CHART_DAYS = 14
# Settled without a verdict that counts as a decision taken: not in the approval latency.
UNSETTLED_BY_PEOPLE = frozenset({DecisionStatus.EXPIRED, DecisionStatus.CANCELLED})
WENT_AHEAD_ALONE = frozenset(
    {
        DecisionStatus.AUTO_APPROVED,
        DecisionStatus.EXECUTING,
        DecisionStatus.SUCCEEDED,
        DecisionStatus.FAILED,
    }
)


@dataclass(frozen=True)
class IncidentSummary:
    """Means over the window's incidents (None when none was acknowledged or resolved), and the
    count opened on each day that had any."""

    mtta_seconds: float | None
    mttr_seconds: float | None
    opened_per_day: dict[date, int]


@dataclass(frozen=True)
class DecisionSummary:
    total: int
    went_ahead_alone: int  # approvals_required == 0 and auto-approved or run since
    pending: int
    approval_latency_seconds: float | None


@dataclass(frozen=True)
class DashboardFigures:
    generated_at: datetime
    open_by_severity: dict[str, int]
    open_by_source: dict[str, int]
    open_total: int
    mtta_seconds: float | None
    mttr_seconds: float | None
    auto_remediation_rate: float | None
    approval_latency_seconds: float | None
    decisions_in_window: int
    pending_approvals: int
    incidents_per_day: list[tuple[date, int]] = field(default_factory=list)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def compute_figures(
    *,
    now: datetime,
    open_counts: Iterable[tuple[str, str, int]],
    incidents: IncidentSummary,
    decisions: DecisionSummary,
) -> DashboardFigures:
    """`open_counts` is (severity, source, count) for incidents not resolved; the summaries
    cover what was created within WINDOW before `now`."""
    by_severity: Counter[str] = Counter({s.value: 0 for s in Severity})
    by_source: Counter[str] = Counter()
    for severity, source, count in open_counts:
        by_severity[severity] += count
        by_source[source] += count
    first_day = (now - timedelta(days=CHART_DAYS - 1)).date()
    days = [first_day + timedelta(days=n) for n in range(CHART_DAYS)]
    return DashboardFigures(
        generated_at=now,
        open_by_severity=dict(by_severity),
        open_by_source=dict(sorted(by_source.items())),
        open_total=sum(by_severity.values()),
        mtta_seconds=_rounded(incidents.mtta_seconds),
        mttr_seconds=_rounded(incidents.mttr_seconds),
        auto_remediation_rate=round(decisions.went_ahead_alone / decisions.total, 3)
        if decisions.total
        else None,
        approval_latency_seconds=_rounded(decisions.approval_latency_seconds),
        decisions_in_window=decisions.total,
        pending_approvals=decisions.pending,
        incidents_per_day=[(day, incidents.opened_per_day.get(day, 0)) for day in days],
    )


def figures_payload(figures: DashboardFigures) -> dict[str, object]:
    """The figures as JSON-ready data: the API's body and the live feed's event."""
    return {
        "generated_at": figures.generated_at.isoformat(),
        "open_incidents": {
            "total": figures.open_total,
            "by_severity": figures.open_by_severity,
            "by_source": figures.open_by_source,
        },
        "mtta_seconds": figures.mtta_seconds,
        "mttr_seconds": figures.mttr_seconds,
        "auto_remediation_rate": figures.auto_remediation_rate,
        "approval_latency_seconds": figures.approval_latency_seconds,
        "decisions_in_window": figures.decisions_in_window,
        "pending_approvals": figures.pending_approvals,
        "window_days": WINDOW.days,
        "incidents_per_day": [
            {"date": day.isoformat(), "count": count} for day, count in figures.incidents_per_day
        ],
    }
