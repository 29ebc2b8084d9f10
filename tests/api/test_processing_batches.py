"""Deliveries processed many to a transaction (services.processing reads ahead what a batch's
correlation asks, and writes its signals and incidents together) keep the effects of
processing them one by one: a vendor event sent twice counts once, a failure, its recovery
and the next failure of one workflow resolve the first incident and open a linked second,
and the audit chain holds every event in order."""

from __future__ import annotations

import copy
import uuid

import httpx

from dragon.domain.ports import AuditQuery
from dragon.services.container import Services
from tests.api.test_ingestion import fixture, incidents, post_github
from tests.conftest import Keys


async def test_a_failure_its_redelivery_its_recovery_and_the_next_failure_in_one_batch(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    failure = fixture("github", "workflow_run.completed.failure")
    again = copy.deepcopy(failure)
    again["workflow_run"]["run_attempt"] = 3
    for payload in (
        failure,
        failure,  # the same vendor event under a new delivery id
        fixture("github", "workflow_run.completed.success"),
        again,
    ):
        response = await post_github(client, payload, "workflow_run", str(uuid.uuid4()))
        assert response.status_code == 202, response.text

    assert await services.processor.run_due(batch=10) == 4

    first, second = sorted(await incidents(client, keys), key=lambda i: i["id"])
    assert (first["status"], first["signal_count"]) == ("resolved", 1)
    assert (second["status"], second["signal_count"]) == ("open", 1)
    events = list(reversed(await services.audit.find(AuditQuery(limit=100))))
    assert [(e.action, e.target_id) for e in events if e.action.startswith("incident.")] == [
        ("incident.created", first["id"]),
        ("incident.resolved", first["id"]),
        ("incident.created", second["id"]),
        ("incident.linked", second["id"]),
    ]
    related = await client.get(f"/api/v1/incidents/{second['id']}/links", headers=keys.of("viewer"))
    assert [(x["linked_id"], x["reason"]) for x in related.json()] == [
        (first["id"], "recurrence_of")
    ]
    assert (await services.audit.verify()).ok
    assert await services.processor.run_due(batch=10) == 0


async def test_many_new_failures_in_one_batch_each_open_one_incident_with_its_signal(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    base = fixture("github", "workflow_run.completed.failure")
    for n in range(20):
        payload = copy.deepcopy(base)
        payload["workflow_run"]["id"] = 7_000_000 + n
        payload["workflow_run"]["head_branch"] = f"feature/{n}"
        await post_github(client, payload, "workflow_run")

    assert await services.processor.run_due(batch=50) == 20

    opened = await incidents(client, keys, limit="100")
    assert len(opened) == 20
    for incident in opened:
        signals = await client.get(
            f"/api/v1/incidents/{incident['id']}/signals", headers=keys.of("viewer")
        )
        assert len(signals.json()) == 1
    assert (await services.audit.verify()).ok
