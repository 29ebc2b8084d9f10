"""Triage in batches: one claim, one read and one write transaction for many incidents, with
every guarantee of triaging them one by one — one decision per incident, its audit events in
order on a chain that verifies, and an incident whose analysis fails retried on its own
while the rest of its batch is decided."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from dragon.domain.enums import TriageStatus
from dragon.domain.ports import AuditQuery
from dragon.domain.triage import Analysis, TriageContext, analyze
from dragon.services.container import Services
from dragon.services.triage import BuiltinAnalyzer
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from tests.conftest import FakeClock, Keys
from tests.integration.test_triage_auto import (
    corpus_log,
    decisions_of,
    report_failure,
    triage_service,
)

INCIDENTS = 12


async def _open_incidents(client: httpx.AsyncClient, services: Services, keys: Keys) -> list[str]:
    for n in range(INCIDENTS):
        await report_failure(
            client, keys, log=corpus_log("lint_format/ruff_isort.log"), branch=f"feature/{n}"
        )
    assert await services.processor.run_due(batch=INCIDENTS) == INCIDENTS
    response = await client.get(
        "/api/v1/incidents", params={"limit": 100}, headers=keys.of("viewer")
    )
    found = [item["id"] for item in response.json()["items"]]
    assert len(found) == INCIDENTS
    return found


async def test_a_batch_decides_each_incident_once_with_its_audit_events_in_order(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    incident_ids = await _open_incidents(client, services, keys)
    triage = triage_service(app, services, clock, BuiltinAnalyzer(), batch=INCIDENTS)

    assert await triage.run_pending() == INCIDENTS
    assert await triage.run_pending() == 0

    events = list(reversed(await services.audit.find(AuditQuery(limit=1000))))
    for incident_id in incident_ids:
        [decision] = await decisions_of(client, keys, incident_id)
        about = [
            e.action
            for e in events
            if e.target_id in (incident_id, decision["id"])
            and e.action.startswith(("decision.", "incident.triaged"))
        ]
        assert about == ["decision.proposed", f"decision.{decision['status']}", "incident.triaged"]
    assert (await services.audit.verify()).ok


async def test_concurrent_batches_over_one_backlog_make_one_decision_per_incident(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    incident_ids = await _open_incidents(client, services, keys)
    workers = [
        triage_service(app, services, clock, BuiltinAnalyzer(), batch=INCIDENTS) for _ in range(3)
    ]

    settled = await asyncio.gather(*(w.run_pending() for w in workers))
    while sum(await asyncio.gather(*(w.run_pending() for w in workers))):
        pass

    assert sum(settled) <= INCIDENTS
    for incident_id in incident_ids:
        assert len(await decisions_of(client, keys, incident_id)) == 1
    assert (await services.audit.verify()).ok


class _FailsOne:
    """The built-in analyzer, except for one branch, whose analysis raises."""

    def __init__(self, branch: str) -> None:
        self.branch = branch

    async def analyze(self, text: str, context: TriageContext) -> Analysis:
        if context.branch == self.branch:
            raise RuntimeError("analyzer crashed")
        return analyze(text, context)


async def test_one_failing_analysis_is_released_for_retry_and_the_rest_of_the_batch_decided(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    incident_ids = await _open_incidents(client, services, keys)
    triage = triage_service(app, services, clock, _FailsOne("feature/3"), batch=INCIDENTS)

    assert await triage.run_pending() == INCIDENTS - 1

    undecided = [i for i in incident_ids if not await decisions_of(client, keys, i)]
    assert len(undecided) == 1
    async with SqlUnitOfWorkFactory(app.state.database)(write=False) as uow:
        run = await uow.triages.get(undecided[0])
    assert run is not None
    assert run.status is TriageStatus.RUNNING  # released, its retry due after a backoff
    assert run.last_error == "RuntimeError: analyzer crashed"
    clock.advance(minutes=11)
    retry = triage_service(app, services, clock, BuiltinAnalyzer(), batch=INCIDENTS)
    assert await retry.run_pending() == 1
    assert len(await decisions_of(client, keys, undecided[0])) == 1
    assert (await services.audit.verify()).ok
