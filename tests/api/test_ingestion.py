"""Ingestion end to end over HTTP: signed vendor webhooks become deduplicated incidents.

Payloads are the vendors' published examples in tests/fixtures (see each SOURCES.md).
Processing is driven explicitly with services.processor.run_due(); the worker loop is off.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.services.container import Services
from tests.conftest import POSTGRES_URL, WEBHOOK_SECRETS, FakeClock, Keys

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(vendor: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((FIXTURES / vendor / f"{name}.json").read_bytes())
    return loaded


def github_headers(body: bytes, event: str, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(WEBHOOK_SECRETS["github"].encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-hub-signature-256": f"sha256={digest}",
    }


async def post_github(
    client: httpx.AsyncClient, payload: dict[str, Any], event: str, delivery: str | None = None
) -> httpx.Response:
    body = orjson.dumps(payload)
    return await client.post(
        "/webhooks/github", content=body, headers=github_headers(body, event, delivery)
    )


async def incidents(client: httpx.AsyncClient, keys: Keys, **filters: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/incidents", params=filters, headers=keys.of("viewer"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_signed_workflow_run_failure_is_stored_then_opens_an_incident(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    response = await post_github(
        client, fixture("github", "workflow_run.completed.failure"), "workflow_run"
    )
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["status"] == "accepted"
    assert receipt["delivery_status"] == "pending"
    assert await incidents(client, keys) == []  # nothing before the worker ran

    assert await services.processor.run_due() == 1
    [incident] = await incidents(client, keys)
    assert incident["source"] == "github"
    assert incident["repo"] == "octo-org/octo-repo"
    assert incident["branch"] == "master"
    assert incident["status"] == "open"
    assert incident["signal_count"] == 1
    delivery = await client.get(
        f"/api/v1/deliveries/{receipt['delivery_id']}", headers=keys.of("admin")
    )
    assert delivery.json()["status"] == "processed"
    assert delivery.json()["result"]["incident_ids"] == [incident["id"]]


async def test_redelivered_github_webhook_creates_no_second_incident(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    payload = fixture("github", "workflow_run.completed.failure")
    delivery = str(uuid.uuid4())
    first = await post_github(client, payload, "workflow_run", delivery)
    await services.processor.run_due()
    again = await post_github(client, payload, "workflow_run", delivery)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["delivery_id"] == first.json()["delivery_id"]
    assert again.json()["delivery_status"] == "processed"
    assert await services.processor.run_due() == 0
    assert len(await incidents(client, keys)) == 1


async def test_the_same_delivery_posted_50_times_concurrently_creates_one_incident(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    payload = fixture("github", "workflow_run.completed.failure")
    delivery = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(post_github(client, payload, "workflow_run", delivery) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [202]
    assert len({r.json()["delivery_id"] for r in responses}) == 1
    await services.processor.run_due()
    listed = await client.get("/api/v1/deliveries", headers=keys.of("admin"))
    assert len(listed.json()["items"]) == 1
    [incident] = await incidents(client, keys)
    assert incident["signal_count"] == 1


async def test_a_burst_redelivered_in_reverse_order_alongside_itself_stores_each_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    # The burst and its redelivery land in the same and in later batches, in both orders.
    payload = fixture("github", "workflow_run.completed.failure")
    burst = [str(uuid.uuid4()) for _ in range(30)]
    responses = await asyncio.gather(
        *(
            post_github(client, payload, "workflow_run", delivery)
            for delivery in burst + burst[::-1]
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 30 + [202] * 30
    by_key: dict[str, set[str]] = {}
    for delivery, response in zip(burst + burst[::-1], responses, strict=True):
        by_key.setdefault(delivery, set()).add(response.json()["delivery_id"])
    assert all(len(ids) == 1 for ids in by_key.values())
    listed = await client.get("/api/v1/deliveries", params={"limit": 100}, headers=keys.of("admin"))
    assert len(listed.json()["items"]) == 30


async def test_a_later_failed_attempt_of_the_same_workflow_adds_to_the_open_incident(
    client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    failure = fixture("github", "workflow_run.completed.failure")
    await post_github(client, failure, "workflow_run")
    await services.processor.run_due()
    retried = copy.deepcopy(failure)
    retried["workflow_run"]["run_attempt"] = 2
    clock.advance(minutes=5)
    await post_github(client, retried, "workflow_run")
    await services.processor.run_due()
    [incident] = await incidents(client, keys)
    assert incident["signal_count"] == 2
    assert incident["status"] == "open"
    signals = await client.get(
        f"/api/v1/incidents/{incident['id']}/signals", headers=keys.of("viewer")
    )
    assert signals.status_code == 200
    assert [(x["kind"], x["branch"]) for x in signals.json()] == [
        ("ci_failure", "master"),
        ("ci_failure", "master"),
    ]
    assert signals.json()[0]["occurred_at"] >= signals.json()[1]["occurred_at"]
    missing = await client.get(
        "/api/v1/incidents/inc_0000000000000000000000000000/signals", headers=keys.of("viewer")
    )
    assert missing.json()["code"] == "incident_not_found"


async def test_green_run_resolves_the_incident_as_the_system_and_a_new_failure_opens_a_linked_one(
    client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    failure = fixture("github", "workflow_run.completed.failure")
    await post_github(client, failure, "workflow_run")
    await services.processor.run_due()
    clock.advance(minutes=10)
    await post_github(client, fixture("github", "workflow_run.completed.success"), "workflow_run")
    await services.processor.run_due()
    [resolved] = await incidents(client, keys)
    assert resolved["status"] == "resolved"
    assert resolved["resolved_by"] == "system"
    audit = await client.get(
        "/api/v1/audit",
        params={"action": "incident.resolved", "target_id": resolved["id"]},
        headers=keys.of("admin"),
    )
    [event] = audit.json()["items"]
    assert event["actor_id"] == "system"
    assert event["details"]["reason"] == "recovered"

    clock.advance(minutes=10)
    again = copy.deepcopy(failure)
    again["workflow_run"]["run_attempt"] = 3
    await post_github(client, again, "workflow_run")
    await services.processor.run_due()
    reopened = [i for i in await incidents(client, keys) if i["status"] == "open"]
    assert len(reopened) == 1
    assert reopened[0]["id"] != resolved["id"]
    links = await client.get(
        "/api/v1/audit",
        params={"action": "incident.linked", "target_id": reopened[0]["id"]},
        headers=keys.of("admin"),
    )
    [link] = links.json()["items"]
    assert link["details"] == {"linked_id": resolved["id"], "reason": "recurrence_of"}
    related = await client.get(
        f"/api/v1/incidents/{reopened[0]['id']}/links", headers=keys.of("viewer")
    )
    assert [(x["linked_id"], x["reason"]) for x in related.json()] == [
        (resolved["id"], "recurrence_of")
    ]
    back = await client.get(f"/api/v1/incidents/{resolved['id']}/links", headers=keys.of("viewer"))
    assert [(x["linked_id"], x["reason"]) for x in back.json()] == [
        (reopened[0]["id"], "recurrence_of")
    ]


async def test_recovery_without_an_open_incident_changes_nothing(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    await post_github(client, fixture("github", "workflow_run.completed.success"), "workflow_run")
    assert await services.processor.run_due() == 1
    assert await incidents(client, keys) == []


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "sha256=" + "0" * 64,
        "sha256=deadbeef",
        "sha1=" + "0" * 40,
        "md5=abc",
        "",
    ],
)
async def test_github_delivery_without_a_valid_signature_is_refused_and_not_stored(
    client: httpx.AsyncClient, keys: Keys, signature: str | None
) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    headers = github_headers(body, "workflow_run")
    del headers["x-hub-signature-256"]
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    listed = await client.get("/api/v1/deliveries", headers=keys.of("admin"))
    assert listed.json()["items"] == []


async def test_signed_but_malformed_json_is_a_400_naming_the_problem(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"action": "completed", '
    response = await client.post(
        "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
    )
    assert response.status_code == 400
    assert response.json()["code"] == "json_invalid"
    assert "JSON" in response.json()["detail"]


async def test_a_signed_event_missing_a_needed_field_is_accepted_then_dead_naming_it(
    client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    # Accepting reads only what the answer needs; the fields of the signal are the worker's.
    payload = fixture("github", "workflow_run.completed.failure")
    del payload["workflow_run"]["updated_at"]
    response = await post_github(client, payload, "workflow_run")
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    for _ in range(5):
        assert await services.processor.run_due() == 1
        clock.advance(minutes=6)
    dead = await client.get(
        "/api/v1/deliveries", params={"status": "dead"}, headers=keys.of("admin")
    )
    [item] = dead.json()["items"]
    assert item["id"] == response.json()["delivery_id"]
    assert "workflow_run.updated_at" in item["last_error"]
    assert await incidents(client, keys) == []


async def test_a_signed_payload_that_is_not_an_object_is_refused_at_once(
    client: httpx.AsyncClient,
) -> None:
    body = b"[1, 2, 3]"
    response = await client.post(
        "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
    )
    assert response.status_code == 422
    assert response.json()["code"] == "payload_invalid"


async def test_webhook_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    body = b"{" + b" " * (5 * 1024 * 1024) + b"}"
    response = await client.post(
        "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
    )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


async def test_unknown_github_event_is_recorded_as_ignored(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    response = await post_github(client, fixture("github", "issues.opened"), "issues")
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert await services.processor.run_due() == 0
    listed = await client.get(
        "/api/v1/deliveries", params={"status": "ignored"}, headers=keys.of("admin")
    )
    assert [d["event_type"] for d in listed.json()["items"]] == ["issues"]


async def test_github_ping_is_answered(client: httpx.AsyncClient) -> None:
    response = await post_github(client, fixture("github", "ping"), "ping")
    assert response.status_code == 200
    assert response.json() == {"status": "pong"}


async def test_normalized_event_with_idempotency_key_is_stored_once(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    event = {
        "kind": "alert_firing",
        "title": "checkout latency high",
        "severity": "SEV2",
        "labels": {"alertname": "CheckoutLatency", "service": "checkout"},
        "environment": "production",
    }
    headers = {**keys.of("developer"), "Idempotency-Key": "deploy-42-alert"}
    first = await client.post("/api/v1/events", json=event, headers=headers)
    second = await client.post("/api/v1/events", json=event, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["delivery_id"] == second.json()["delivery_id"]
    await services.processor.run_due()
    [incident] = await incidents(client, keys)
    assert incident["severity"] == "SEV2"
    assert incident["environment"] == "production"

    resolved = {**event, "kind": "alert_resolved"}
    await client.post("/api/v1/events", json=resolved, headers=keys.of("developer"))
    await services.processor.run_due()
    [incident] = await incidents(client, keys)
    assert incident["status"] == "resolved"


async def test_ci_failure_and_alert_on_the_same_commit_are_linked(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    commit = "3484a3fb" + "0" * 32
    ci = await client.post(
        "/api/ci/event",
        json={
            "repo": "acme/shop",
            "status": "failure",
            "branch": "main",
            "commit": commit,
            "workflow": "deploy",
        },
        headers=keys.of("developer"),
    )
    alert = await client.post(
        "/api/observability/alert",
        json={
            "alertname": "CheckoutErrors",
            "severity": "critical",
            "service": "checkout",
            "commit": commit,
        },
        headers=keys.of("developer"),
    )
    assert (ci.status_code, alert.status_code) == (202, 202)
    await services.processor.run_due()
    both = await incidents(client, keys)
    assert len(both) == 2
    newest = both[0]
    linked = await client.get(
        "/api/v1/audit",
        params={"action": "incident.linked", "target_id": newest["id"]},
        headers=keys.of("admin"),
    )
    [event] = linked.json()["items"]
    assert event["details"] == {"linked_id": both[1]["id"], "reason": "same_commit"}


async def test_failing_delivery_retries_with_backoff_then_is_dead_and_can_be_retried(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    clock: FakeClock,
    database_url: str,
) -> None:
    response = await post_github(
        client, fixture("github", "workflow_run.completed.failure"), "workflow_run"
    )
    delivery_id = response.json()["delivery_id"]
    # Corrupt the stored body so that processing fails every time.
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE deliveries SET body = :body WHERE id = :id"),
            {"body": b"not json", "id": delivery_id},
        )
    await engine.dispose()
    for _ in range(5):
        assert await services.processor.run_due() == 1
        assert await services.processor.run_due() == 0  # the retry is not due yet
        clock.advance(minutes=6)
    dead = await client.get(
        "/api/v1/deliveries", params={"status": "dead"}, headers=keys.of("admin")
    )
    [item] = dead.json()["items"]
    assert item["id"] == delivery_id
    assert item["attempts"] == 5
    assert "JSON" in item["last_error"]

    retried = await client.post(f"/api/v1/deliveries/{delivery_id}/retry", headers=keys.of("admin"))
    assert retried.status_code == 200
    assert retried.json()["status"] == "pending"
    assert retried.json()["attempts"] == 0
    again = await client.post(f"/api/v1/deliveries/{delivery_id}/retry", headers=keys.of("admin"))
    assert again.status_code == 409
    assert again.json()["code"] == "delivery_not_dead"
    audit = await client.get(
        "/api/v1/audit", params={"action": "delivery.retried"}, headers=keys.of("admin")
    )
    assert [e["target_id"] for e in audit.json()["items"]] == [delivery_id]


@pytest.mark.skipif(not POSTGRES_URL, reason="procrastinate jobs live in PostgreSQL")
async def test_a_retried_dead_delivery_gets_its_job_in_the_retry_transaction(
    client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock
) -> None:
    payload = fixture("github", "workflow_run.completed.failure")
    del payload["workflow_run"]["updated_at"]  # processing fails until it is dead
    response = await post_github(client, payload, "workflow_run")
    delivery_id = response.json()["delivery_id"]
    for _ in range(5):
        await services.processor.run_due()
        clock.advance(minutes=6)
    engine = create_async_engine(POSTGRES_URL)
    jobs_sql = sa.text(
        "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' "
        "AND task_name = 'dragon.process_deliveries' AND args->'delivery_ids' ? :id"
    )
    try:
        # The job deferred with the delivery has run (a worker took it): none is waiting.
        async with engine.begin() as connection:
            await connection.execute(
                sa.text("DELETE FROM procrastinate_jobs WHERE task_name = :task"),
                {"task": "dragon.process_deliveries"},
            )
        retried = await client.post(
            f"/api/v1/deliveries/{delivery_id}/retry", headers=keys.of("admin")
        )
        assert retried.status_code == 200
        async with engine.connect() as connection:
            after = (await connection.execute(jobs_sql, {"id": delivery_id})).scalar_one()
    finally:
        await engine.dispose()
    # A worker runs it at once, rather than the sweep finding it seconds later.
    assert after == 1


@pytest.mark.skipif(not POSTGRES_URL, reason="procrastinate jobs live in PostgreSQL")
async def test_only_a_newly_stored_pending_delivery_defers_a_job(
    client: httpx.AsyncClient,
) -> None:
    jobs_sql = sa.text(
        "SELECT args FROM procrastinate_jobs WHERE task_name = 'dragon.process_deliveries'"
    )
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            before = len((await connection.execute(jobs_sql)).all())
        payload = fixture("github", "workflow_run.completed.failure")
        accepted = await post_github(client, payload, "workflow_run", delivery="job-once")
        again = await post_github(client, payload, "workflow_run", delivery="job-once")
        ignored = await post_github(client, {"zen": "hi"}, "star", delivery="job-never")
        async with engine.connect() as connection:
            jobs = [row.args for row in (await connection.execute(jobs_sql)).all()]
    finally:
        await engine.dispose()
    assert (accepted.status_code, again.status_code, ignored.status_code) == (202, 200, 202)
    assert ignored.json()["status"] == "ignored"
    assert len(jobs) == before + 1
    assert {"delivery_ids": [accepted.json()["delivery_id"]]} in jobs


@pytest.mark.skipif(not POSTGRES_URL, reason="TOAST compression is PostgreSQL's")
async def test_a_large_delivery_body_is_compressed_with_lz4_on_postgresql(
    client: httpx.AsyncClient,
) -> None:
    payload = fixture("github", "workflow_run.completed.failure")
    payload["workflow_run"]["display_title"] = "a long title " * 400  # past TOAST's 2 KB
    response = await post_github(client, payload, "workflow_run")
    assert response.status_code == 202, response.text
    engine = create_async_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            method = (
                await connection.execute(
                    sa.text("SELECT pg_column_compression(body) FROM deliveries WHERE id = :id"),
                    {"id": response.json()["delivery_id"]},
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert method == "lz4"


async def test_a_bad_delivery_does_not_hold_back_the_good_ones_processed_with_it(
    client: httpx.AsyncClient, services: Services, keys: Keys, database_url: str
) -> None:
    bad = await post_github(
        client, fixture("github", "workflow_run.completed.failure"), "workflow_run"
    )
    good = await post_github(
        client, fixture("github", "workflow_job.completed.failure"), "workflow_job"
    )
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE deliveries SET body = :body WHERE id = :id"),
            {"body": b"{", "id": bad.json()["delivery_id"]},
        )
    await engine.dispose()

    assert await services.processor.run_due() == 2
    good_now = await client.get(
        f"/api/v1/deliveries/{good.json()['delivery_id']}", headers=keys.of("admin")
    )
    bad_now = await client.get(
        f"/api/v1/deliveries/{bad.json()['delivery_id']}", headers=keys.of("admin")
    )
    assert good_now.json()["status"] == "processed"
    assert (bad_now.json()["status"], bad_now.json()["attempts"]) == ("pending", 1)
    assert len(await incidents(client, keys)) == 1


@pytest.mark.parametrize(
    "case",
    [
        (
            "/api/ci/event",
            {"repo": "acme/shop", "status": "failed", "branch": "main", "workflow": "deploy"},
            {"repo": "acme/shop", "status": "passed", "branch": "main", "workflow": "deploy"},
        ),
        (
            "/api/observability/alert",
            {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical"},
            {"alertname": "CheckoutErrors", "service": "checkout", "status": "resolved"},
        ),
    ],
)
async def test_the_original_routes_open_an_incident_and_their_recovery_resolves_it(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    case: tuple[str, dict[str, Any], dict[str, Any]],
) -> None:
    path, failing, recovered = case
    for body in (failing, failing):  # a repeat adds to the open incident
        answer = await client.post(path, json=body, headers=keys.of("developer"))
        assert answer.status_code == 202, answer.text
        await services.processor.run_due()
    [incident] = await incidents(client, keys)
    assert (incident["status"], incident["signal_count"]) == ("open", 2)

    answer = await client.post(path, json=recovered, headers=keys.of("developer"))
    assert answer.status_code == 202, answer.text
    await services.processor.run_due()
    [resolved] = await incidents(client, keys)
    assert (resolved["id"], resolved["status"], resolved["resolved_by"]) == (
        incident["id"],
        "resolved",
        "system",
    )
