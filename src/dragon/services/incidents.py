"""Incident use cases: open one by hand, list and read them, acknowledge and resolve."""

from __future__ import annotations

from dataclasses import dataclass, field

from dragon.domain.clock import Clock
from dragon.domain.entities import Incident, IncidentLink, Signal
from dragon.domain.enums import IncidentStatus, Severity
from dragon.domain.errors import NotFound
from dragon.domain.ids import new_id
from dragon.domain.ports import IncidentQuery, UnitOfWork, UnitOfWorkFactory
from dragon.domain.transitions import transition_incident
from dragon.services.audit_log import record
from dragon.services.context import Caller
from dragon.services.outbox import notify


@dataclass(frozen=True, kw_only=True)
class NewIncident:
    title: str
    severity: Severity
    source: str = "api"
    description: str = ""
    repo: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    environment: str | None = None
    url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


async def load_incident(uow: UnitOfWork, incident_id: str, *, for_update: bool = False) -> Incident:
    incident = await uow.incidents.get(incident_id, for_update=for_update)
    if incident is None:
        raise NotFound(f"no incident {incident_id}", code="incident_not_found")
    return incident


class IncidentService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def open(self, caller: Caller, new: NewIncident) -> Incident:
        now = self._clock()
        incident = Incident(
            id=new_id("inc", now),
            title=new.title,
            severity=new.severity,
            source=new.source,
            description=new.description,
            repo=new.repo,
            branch=new.branch,
            commit_sha=new.commit_sha,
            environment=new.environment,
            url=new.url,
            labels=dict(new.labels),
            # Opened by hand, it has no signal: a count of 1 showed one the incident lacks.
            signal_count=0,
            created_by=caller.principal.id,
            created_at=now,
            updated_at=now,
            first_seen_at=now,
            last_seen_at=now,
        )
        async with self._uow() as uow:
            await uow.incidents.add(incident)
            await record(
                uow,
                caller,
                action="incident.created",
                target_type="incident",
                target_id=incident.id,
                now=now,
                details={"title": incident.title, "severity": incident.severity.value},
            )
            await notify(uow, event="incident.opened", now=now, incident=incident)
            await uow.commit()
        return incident

    async def get(self, incident_id: str) -> Incident:
        async with self._uow(write=False) as uow:
            return await load_incident(uow, incident_id)

    async def signals(self, incident_id: str, *, limit: int = 100) -> list[Signal]:
        """The incident's signals, newest first."""
        async with self._uow(write=False) as uow:
            await load_incident(uow, incident_id)
            return await uow.signals.for_incident(incident_id, limit=limit)

    async def links(self, incident_id: str) -> list[IncidentLink]:
        """Incidents related to this one: recurrences and incidents on the same commit."""
        async with self._uow(write=False) as uow:
            await load_incident(uow, incident_id)
            return await uow.correlation.links_of(incident_id)

    async def find(self, query: IncidentQuery) -> tuple[list[Incident], str | None]:
        # One statement (the page's ids and rows together; on PostgreSQL a text search reads
        # the statistics sample first, which needs no common snapshot with it).
        async with self._uow(write=False, snapshot=False) as uow:
            return await uow.incidents.find(query)

    async def acknowledge(self, caller: Caller, incident_id: str) -> Incident:
        return await self._move(caller, incident_id, IncidentStatus.ACKNOWLEDGED)

    async def resolve(self, caller: Caller, incident_id: str, *, note: str = "") -> Incident:
        return await self._move(caller, incident_id, IncidentStatus.RESOLVED, note=note)

    async def _move(
        self, caller: Caller, incident_id: str, to: IncidentStatus, *, note: str = ""
    ) -> Incident:
        now = self._clock()
        async with self._uow() as uow:
            incident = await load_incident(uow, incident_id, for_update=True)
            before = transition_incident(incident, to, actor_id=caller.principal.id, now=now)
            details: dict[str, str] = {"from": before.value, "to": to.value}
            if note:
                details["note"] = note
            await record(
                uow,
                caller,
                action=f"incident.{to.value}",
                target_type="incident",
                target_id=incident.id,
                now=now,
                details=details,
            )
            await notify(
                uow,
                event=f"incident.{to.value}",
                now=now,
                incident=incident,
                details={"by": caller.principal.name, **({"note": note} if note else {})},
            )
            await uow.commit()
        return incident
