"""Operating Dragon: a request past its deadline is cut with a 503 and logged; an exhausted
connection pool answers 503 after a short wait; slow queries are logged with their duration;
/metrics speaks Prometheus' format and can be guarded by a token."""

from __future__ import annotations

import contextlib
import time

import httpx
import orjson
import pytest
import sqlalchemy as sa
import structlog
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.services.container import Services
from dragon.store.database import Database
from dragon.store.tables import incidents
from tests.conftest import POSTGRES_URL, FakeClock, Keys
from tests.production.conftest import AppFactory
from tests.support.store_locks import table_locked

INCIDENT = {"title": "disk full on db-1", "severity": "SEV3"}


async def test_a_request_past_its_deadline_is_a_503_and_stores_nothing(
    make_app: AppFactory, keys: Keys
) -> None:
    async with make_app(request_timeout_seconds=0.5) as (app, http):
        database: Database = app.state.database
        with structlog.testing.capture_logs() as logged:
            async with table_locked(database, incidents):
                started = time.perf_counter()
                cut = await http.post(
                    "/api/v1/incidents", json=INCIDENT, headers=keys.of("developer")
                )
                waited = time.perf_counter() - started
        listed = await http.get("/api/v1/incidents", headers=keys.of("viewer"))

    assert cut.status_code == 503
    assert cut.json()["code"] == "request_timeout"
    assert cut.headers["retry-after"]
    assert waited < 5
    assert listed.json()["items"] == []
    (event,) = [e for e in logged if e["event"] == "request_deadline_exceeded"]
    assert event["path"] == "/api/v1/incidents"


async def test_an_exhausted_pool_answers_503_after_a_short_wait(
    make_app: AppFactory, keys: Keys
) -> None:
    async with make_app(db_pool_size=1, db_pool_timeout_seconds=0.3) as (app, http):
        database: Database = app.state.database
        async with contextlib.AsyncExitStack() as held:
            # Every connection readers can have: one on SQLite; pool plus overflow on PostgreSQL.
            for _ in range(2 if POSTGRES_URL else 1):
                await held.enter_async_context(database.reader.connect())
            started = time.perf_counter()
            refused = await http.get("/api/v1/incidents", headers=keys.of("viewer"))
            waited = time.perf_counter() - started
        after = await http.get("/api/v1/incidents", headers=keys.of("viewer"))

    assert refused.status_code == 503
    assert refused.json()["code"] == "database_pool_exhausted"
    assert refused.headers["retry-after"]
    assert 0.25 < waited < 5
    assert after.status_code == 200


async def test_slow_queries_are_logged_with_their_duration_and_without_parameters(
    make_app: AppFactory, keys: Keys
) -> None:
    async with make_app(slow_query_ms=0) as (_, http):
        with structlog.testing.capture_logs() as logged:
            made = await http.post(
                "/api/v1/incidents",
                json={**INCIDENT, "title": "marker-title-8c1f"},
                headers=keys.of("developer"),
            )
    assert made.status_code == 201
    slow = [e for e in logged if e["event"] == "slow_query"]
    assert any("INSERT INTO incidents" in e["statement"] for e in slow)
    assert all(e["duration_ms"] >= 0 for e in slow)
    assert not any("marker-title-8c1f" in str(e) for e in slow)


def metric_samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_metrics_are_public_prometheus_text_with_latency_by_route_template(
    client: httpx.AsyncClient, keys: Keys, app: FastAPI
) -> None:
    made = await client.post("/api/v1/incidents", json=INCIDENT, headers=keys.of("developer"))
    incident_id = made.json()["id"]
    await client.get(f"/api/v1/incidents/{incident_id}", headers=keys.of("viewer"))
    await client.get("/no/such/route/12345")

    scraped = await client.get("/metrics")

    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = metric_samples(scraped.text)
    routes = {
        labels["route"] for labels, _ in samples["dragon_http_request_duration_seconds_count"]
    }
    assert {"/api/v1/incidents", "/api/v1/incidents/{incident_id}", "unmatched"} <= routes
    assert not any(incident_id in route or "12345" in route for route in routes)
    assert samples["dragon_pending_approvals"][0][1] == 0
    assert samples["dragon_queue_depth"][0][1] >= 0
    assert samples["dragon_store_up"][0][1] == 1
    pools = {(labels["pool"], labels["use"]) for labels, _ in samples["dragon_db_pool_connections"]}
    assert ("writer", "size") in pools
    assert "dragon_db_query_duration_seconds_count" in samples


async def test_pending_approvals_are_counted(client: httpx.AsyncClient, keys: Keys) -> None:
    incident = await client.post(
        "/api/v1/incidents",
        json={**INCIDENT, "environment": "production"},
        headers=keys.of("developer"),
    )
    decision = await client.post(
        "/api/v1/decisions",
        json={
            "incident_id": incident.json()["id"],
            "action": "rollback_deployment",
            "title": "roll back",
        },
        headers=keys.of("developer"),
    )
    assert decision.json()["status"] == "pending_approval"

    samples = metric_samples((await client.get("/metrics")).text)

    assert samples["dragon_pending_approvals"][0][1] == 1


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong-token-but-long-enough-0123456789", 401), ("good", 200)],
)
async def test_a_metrics_token_guards_metrics(
    make_app: AppFactory, authorization: str | None, status: int
) -> None:
    token = "metrics-token-for-tests-0123456789abcdef"
    headers = {}
    if authorization is not None:
        headers["Authorization"] = f"Bearer {token}" if authorization == "good" else authorization
    async with make_app(metrics_token=SecretStr(token)) as (_, http):
        answer = await http.get("/metrics", headers=headers)

    assert answer.status_code == status
    if status == 401:
        assert answer.json()["code"] == "metrics_token_invalid"
        assert token not in answer.text


async def test_metrics_still_answer_with_the_store_down(make_app: AppFactory, keys: Keys) -> None:
    async with make_app() as (app, http):
        await app.state.database.dispose()
        app.state.database.reader.sync_engine.pool._creator = _refuse
        app.state.database.writer.sync_engine.pool._creator = _refuse
        scraped = await http.get("/metrics")

    assert scraped.status_code == 200
    assert metric_samples(scraped.text)["dragon_store_up"][0][1] == 0


def _refuse() -> None:
    raise ConnectionRefusedError("the store is down")


def gauge(text: str, name: str, **labels: str) -> float:
    found = [
        value
        for sample_labels, value in metric_samples(text).get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_metrics_follow_a_delivery_from_the_queue_to_dead_and_back_to_processed(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    clock: FakeClock,
    database_url: str,
) -> None:
    body = orjson.dumps({"kind": "ci_failure", "title": "deploy failed", "repo": "acme/shop"})
    made = await client.post(
        "/api/v1/events",
        content=body,
        headers={**keys.of("developer"), "content-type": "application/json"},
    )
    assert made.status_code == 202, made.text
    delivery_id = made.json()["delivery_id"]
    clock.advance(seconds=90)
    waiting = (await client.get("/metrics")).text
    assert gauge(waiting, "dragon_queue_depth") == 1
    assert gauge(waiting, "dragon_queue_oldest_age_seconds") == 90
    assert gauge(waiting, "dragon_deliveries", status="pending") == 1
    assert gauge(waiting, "dragon_deliveries", status="dead") == 0

    # Processing fails every time (the stored body is not JSON), until the delivery is dead.
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE deliveries SET body = :body WHERE id = :id"),
            {"body": b"not json", "id": delivery_id},
        )
    for _ in range(5):
        await services.processor.run_due()
        clock.advance(minutes=6)
    dead = (await client.get("/metrics")).text
    assert gauge(dead, "dragon_deliveries", status="dead") == 1
    assert gauge(dead, "dragon_queue_depth") == 0
    assert gauge(dead, "dragon_queue_oldest_age_seconds") == 0

    async with engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE deliveries SET body = :body WHERE id = :id"),
            {"body": body, "id": delivery_id},
        )
    await engine.dispose()
    retried = await client.post(f"/api/v1/deliveries/{delivery_id}/retry", headers=keys.of("admin"))
    assert retried.status_code == 200, retried.text
    await services.processor.run_due()
    after = (await client.get("/metrics")).text
    # Gone from dead-letter: DragonDeadDeliveries must stop firing.
    assert gauge(after, "dragon_deliveries", status="dead") == 0
    assert gauge(after, "dragon_deliveries", status="processed") == 1
    assert gauge(after, "dragon_queue_depth") == 0


def query_count(text: str) -> float:
    return sum(value for _, value in metric_samples(text)["dragon_db_query_duration_seconds_count"])


async def test_every_query_is_timed_and_only_those_over_the_threshold_are_logged(
    make_app: AppFactory, keys: Keys
) -> None:
    async with make_app(slow_query_ms=60_000) as (_, http):
        first = query_count((await http.get("/metrics")).text)
        # A scrape runs statements of its own: what one costs, to tell the request's apart.
        scrape = query_count((await http.get("/metrics")).text) - first
        with structlog.testing.capture_logs() as logged:
            made = await http.post("/api/v1/incidents", json=INCIDENT, headers=keys.of("developer"))
        after = query_count((await http.get("/metrics")).text)

    assert made.status_code == 201
    assert after - (first + scrape) - scrape >= 2  # the INSERT and its audit event at least
    assert not [e for e in logged if e["event"] == "slow_query"]
