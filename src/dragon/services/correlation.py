"""Correlation: signals become incidents by fingerprint.

A failure opens an incident or adds to the open one; a recovery resolves it (attributed to the
system); a failure after resolution opens a new incident linked to the previous one; incidents
on the same commit are linked across sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dragon.domain.entities import Incident, IncidentLink, Signal, TriageClaim
from dragon.domain.enums import IncidentStatus, Severity
from dragon.domain.ids import new_id
from dragon.domain.ports import UnitOfWork
from dragon.domain.signals import SignalDraft
from dragon.domain.transitions import transition_incident
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER
from dragon.services.outbox import notify


def _worse(a: Severity, b: Severity) -> Severity:
    return min(a, b, key=lambda s: s.value)  # SEV1 is the worst


@dataclass(frozen=True, slots=True)
class Correlated:
    """Where one signal went: its incident, if any, and that incident when the signal
    opened it."""

    incident_id: str | None
    opened: Incident | None = None


async def correlate(
    uow: UnitOfWork,
    draft: SignalDraft,
    signal: Signal,
    now: datetime,
    *,
    triage: TriageClaim | None = None,
) -> Correlated:
    """Apply one new signal to the incidents. The caller holds the fingerprint's lock
    (services.processing locks a transaction's fingerprints together, in sorted order); an
    incident this opens is claimed for triage by `triage`, when given."""
    current = await uow.correlation.open_incident(draft.fingerprint)
    if draft.kind.is_recovery:
        if current is None:
            return Correlated(None)
        transition_incident(
            current, IncidentStatus.RESOLVED, actor_id=SYSTEM_CALLER.principal.id, now=now
        )
        current.last_seen_at = max(current.last_seen_at, draft.occurred_at)
        await record(
            uow,
            SYSTEM_CALLER,
            action="incident.resolved",
            target_type="incident",
            target_id=current.id,
            now=now,
            details={"reason": "recovered", "signal_id": signal.id, "kind": draft.kind.value},
        )
        await notify(
            uow,
            event="incident.resolved",
            now=now,
            incident=current,
            details={"reason": "recovered"},
        )
        return Correlated(current.id)
    if current is not None:
        current.signal_count += 1
        current.last_seen_at = max(current.last_seen_at, draft.occurred_at)
        current.severity = _worse(current.severity, draft.severity)
        current.updated_at = now
        await record(
            uow,
            SYSTEM_CALLER,
            action="incident.signal_added",
            target_type="incident",
            target_id=current.id,
            now=now,
            details={"signal_id": signal.id, "signal_count": current.signal_count},
        )
        await notify(uow, event="incident.updated", now=now, incident=current)
        return Correlated(current.id)
    incident = _incident_from(draft, now)
    await uow.incidents.add(incident, triage=triage)
    await record(
        uow,
        SYSTEM_CALLER,
        action="incident.created",
        target_type="incident",
        target_id=incident.id,
        now=now,
        details={
            "title": incident.title,
            "severity": incident.severity.value,
            "source": incident.source,
            "fingerprint": incident.fingerprint,
            "signal_id": signal.id,
        },
    )
    await _link_related(uow, incident, draft, now)
    await notify(uow, event="incident.opened", now=now, incident=incident)
    return Correlated(incident.id, opened=incident)


def _incident_from(draft: SignalDraft, now: datetime) -> Incident:
    return Incident(
        id=new_id("inc", now),
        title=draft.title,
        severity=draft.severity,
        source=draft.source,
        description=draft.log_excerpt[-2000:],
        repo=draft.repo,
        branch=draft.branch,
        commit_sha=draft.commit_sha,
        environment=draft.environment,
        url=draft.url,
        fingerprint=draft.fingerprint,
        labels=dict(draft.labels),
        signal_count=1,
        created_by=SYSTEM_CALLER.principal.id,
        created_at=now,
        updated_at=now,
        first_seen_at=draft.occurred_at,
        last_seen_at=draft.occurred_at,
    )


async def _link_related(
    uow: UnitOfWork, incident: Incident, draft: SignalDraft, now: datetime
) -> None:
    # One link per pair of incidents; a recurrence is the stronger reason, so it comes first.
    links: dict[str, str] = {}
    previous = await uow.correlation.last_resolved(draft.fingerprint)
    if previous is not None and previous.id != incident.id:
        links[previous.id] = "recurrence_of"
    if draft.commit_sha:
        for other in await uow.correlation.incidents_with_commit(
            draft.commit_sha, exclude=incident.id
        ):
            links.setdefault(other.id, "same_commit")
    for other_id, reason in links.items():
        # Links read both ways, so each is stored in both directions.
        for a, b in ((incident.id, other_id), (other_id, incident.id)):
            await uow.correlation.link(
                IncidentLink(incident_id=a, linked_id=b, reason=reason, created_at=now)
            )
        await record(
            uow,
            SYSTEM_CALLER,
            action="incident.linked",
            target_type="incident",
            target_id=incident.id,
            now=now,
            details={"linked_id": other_id, "reason": reason},
        )
