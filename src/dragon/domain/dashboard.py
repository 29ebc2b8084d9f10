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
_WENT_AHEAD_ALONE = frozenset(
    {
        DecisionStatus.AUTO_APPROVED,
        DecisionStatus.EXECUTING,
        DecisionStatus.SUCCEEDED,
        DecisionStatus.FAILED,
    }
)


@dataclass(frozen=True)
class IncidentTimes:
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class DecisionTimes:
    status: DecisionStatus
    approvals_required: int
    created_at: datetime
    decided_at: datetime | None


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


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def compute_figures(
    *,
    now: datetime,
    open_counts: Iterable[tuple[str, str, int]],
    incidents: Iterable[IncidentTimes],
    decisions: Iterable[DecisionTimes],
) -> DashboardFigures:
    """`open_counts` is (severity, source, count) for incidents not resolved; `incidents` and
    `decisions` are those created within WINDOW before `now`."""
    by_severity: Counter[str] = Counter({s.value: 0 for s in Severity})
    by_source: Counter[str] = Counter()
    for severity, source, count in open_counts:
        by_severity[severity] += count
        by_source[source] += count
    incident_rows = list(incidents)
    mtta = [
        (i.acknowledged_at - i.created_at).total_seconds()
        for i in incident_rows
        if i.acknowledged_at is not None
    ]
    mttr = [
        (i.resolved_at - i.created_at).total_seconds()
        for i in incident_rows
        if i.resolved_at is not None
    ]
    first_day = (now - timedelta(days=CHART_DAYS - 1)).date()
    per_day: Counter[date] = Counter(
        i.created_at.date() for i in incident_rows if i.created_at.date() >= first_day
    )
    decision_rows = list(decisions)
    alone = sum(
        1 for d in decision_rows if d.approvals_required == 0 and d.status in _WENT_AHEAD_ALONE
    )
    latency = [
        (d.decided_at - d.created_at).total_seconds()
        for d in decision_rows
        if d.approvals_required > 0
        and d.decided_at is not None
        and d.status not in {DecisionStatus.EXPIRED, DecisionStatus.CANCELLED}
    ]
    return DashboardFigures(
        generated_at=now,
        open_by_severity=dict(by_severity),
        open_by_source=dict(sorted(by_source.items())),
        open_total=sum(by_severity.values()),
        mtta_seconds=_mean(mtta),
        mttr_seconds=_mean(mttr),
        auto_remediation_rate=round(alone / len(decision_rows), 3) if decision_rows else None,
        approval_latency_seconds=_mean(latency),
        decisions_in_window=len(decision_rows),
        pending_approvals=sum(
            1 for d in decision_rows if d.status is DecisionStatus.PENDING_APPROVAL
        ),
        incidents_per_day=[
            (first_day + timedelta(days=n), per_day[first_day + timedelta(days=n)])
            for n in range(CHART_DAYS)
        ],
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
