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


async def _report(client: httpx.AsyncClient, keys: Keys, *, count: int) -> None:
    for n in range(count):
        await report_failure(
            client, keys, log=corpus_log("lint_format/ruff_isort.log"), branch=f"feature/{n}"
        )


async def test_a_pass_claims_the_triage_of_what_it_opens_and_decides_it_from_what_it_holds(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    await _report(client, keys, count=INCIDENTS)
    claim = services.triage.opening_claim()

    settled = await services.processor.settle_due(batch=INCIDENTS, triage=claim)

    assert settled.count == INCIDENTS
    assert len(settled.opened) == INCIDENTS
    async with SqlUnitOfWorkFactory(app.state.database)(write=False) as uow:
        runs = [await uow.triages.get(o.incident.id) for o in settled.opened]
    # Committed with the incidents as the first attempt under the pass's claim: no claim
    # transaction to come, and no other worker takes them before the lease runs out.
    assert all(r is not None and r.status is TriageStatus.RUNNING for r in runs)
    assert {(r.token, r.attempts, r.lease_until) for r in runs if r} == {
        (claim.token, 1, claim.lease_until)
    }
    assert await services.triage.run_pending() == 0
    for opened in settled.opened:
        assert [s.incident_id for s in opened.signals] == [opened.incident.id]

    decided = await services.triage.run_opened(
        [(o.incident, o.signals) for o in settled.opened], claim=claim
    )

    assert decided == INCIDENTS
    events = list(reversed(await services.audit.find(AuditQuery(limit=1000))))
    for opened in settled.opened:
        [decision] = await decisions_of(client, keys, opened.incident.id)
        about = [
            e.action
            for e in events
            if e.target_id in (opened.incident.id, decision["id"])
            and e.action.startswith(("decision.", "incident.triaged"))
        ]
        assert about == ["decision.proposed", f"decision.{decision['status']}", "incident.triaged"]
        async with SqlUnitOfWorkFactory(app.state.database)(write=False) as uow:
            run = await uow.triages.get(opened.incident.id)
        assert run is not None
        assert (run.status, run.decision_id) == (TriageStatus.DONE, decision["id"])
    assert (await services.audit.verify()).ok


async def test_incidents_claimed_by_a_pass_whose_worker_stopped_are_triaged_once_its_lease_ran_out(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    await _report(client, keys, count=3)
    claim = services.triage.opening_claim()
    settled = await services.processor.settle_due(batch=3, triage=claim)
    assert len(settled.opened) == 3
    backstop = triage_service(app, services, clock, BuiltinAnalyzer(), batch=3)
    # The worker stopped before it triaged them: they are its until the lease runs out.
    assert await backstop.run_pending() == 0

    clock.advance(minutes=3)
    assert await backstop.run_pending() == 3
    # The stopped worker's late triage stores nothing: the claims are the backstop's now.
    assert (
        await services.triage.run_opened(
            [(o.incident, o.signals) for o in settled.opened], claim=claim
        )
        == 0
    )

    for opened in settled.opened:
        assert len(await decisions_of(client, keys, opened.incident.id)) == 1
        async with SqlUnitOfWorkFactory(app.state.database)(write=False) as uow:
            run = await uow.triages.get(opened.incident.id)
        assert run is not None
        assert (run.status, run.attempts) == (TriageStatus.DONE, 2)
    assert (await services.audit.verify()).ok


async def test_a_pass_without_a_claim_leaves_what_it_opens_waiting_for_the_triage_worker(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    await _report(client, keys, count=2)

    settled = await services.processor.settle_due(batch=2)

    assert settled.opened == ()
    assert len(settled.incident_ids) == 2
    assert await services.triage.run_pending() == 2


async def test_a_batch_one_of_whose_claims_was_taken_over_decides_the_rest_and_leaves_that_one(
    app: FastAPI, client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    await _report(client, keys, count=3)
    claim = services.triage.opening_claim()
    settled = await services.processor.settle_due(batch=3, triage=claim)
    clock.advance(minutes=3)  # this worker outlived its lease ...
    taker = triage_service(app, services, clock, BuiltinAnalyzer(), batch=1)
    assert await taker.run_pending() == 1  # ... and another worker took one claim over

    decided = await services.triage.run_opened(
        [(o.incident, o.signals) for o in settled.opened], claim=claim
    )

    assert decided == 2
    for opened in settled.opened:
        assert len(await decisions_of(client, keys, opened.incident.id)) == 1
    triaged = [
        e.target_id
        for e in await services.audit.find(AuditQuery(limit=1000))
        if e.action == "incident.triaged"
    ]
    assert sorted(triaged) == sorted(o.incident.id for o in settled.opened)
    assert (await services.audit.verify()).ok
