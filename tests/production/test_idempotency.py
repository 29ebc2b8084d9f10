"""Idempotency-Key on creating POSTs, in one process (memory) and across replicas (Redis):
a retry gets the first answer and creates nothing new; a reused key with another body is a
422; concurrent first uses run once; keys expire after their time to live."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from dragon.domain.ports import IdempotencyRecord, StoredResponse
from dragon.services.container import Services
from dragon.store.idempotency import MemoryIdempotencyStore, RedisIdempotencyStore
from tests.conftest import Keys
from tests.production.conftest import REDIS_URL, AppFactory

INCIDENT = {"title": "checkout 500s after deploy", "severity": "SEV2"}


def redis_settings(prefix: str) -> dict[str, Any]:
    return {"redis_url": SecretStr(REDIS_URL), "redis_key_prefix": prefix}


async def incident_count(http: httpx.AsyncClient, keys: Keys) -> int:
    listed = await http.get("/api/v1/incidents", headers=keys.of("viewer"))
    assert listed.status_code == 200
    return len(listed.json()["items"])


async def create(
    http: httpx.AsyncClient, keys: Keys, key: str, body: dict[str, Any] = INCIDENT
) -> httpx.Response:
    headers = {**keys.of("developer"), "Idempotency-Key": key}
    return await http.post("/api/v1/incidents", json=body, headers=headers)


async def test_a_retried_create_returns_the_first_answer_and_creates_nothing_new(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first = await create(client, keys, "retry-1")
    again = await create(client, keys, "retry-1")

    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await incident_count(client, keys) == 1


async def test_the_same_key_with_another_body_is_refused_with_422(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    assert (await create(client, keys, "reused")).status_code == 201
    other = await create(client, keys, "reused", {**INCIDENT, "title": "another incident"})

    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert await incident_count(client, keys) == 1


async def test_requests_without_the_header_are_not_deduplicated(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for _ in range(2):
        made = await client.post("/api/v1/incidents", json=INCIDENT, headers=keys.of("developer"))
        assert made.status_code == 201
    assert await incident_count(client, keys) == 2


async def test_keys_are_scoped_to_the_caller_who_sent_them(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    mine = await create(client, keys, "shared-key")
    theirs = await client.post(
        "/api/v1/incidents",
        json=INCIDENT,
        headers={**keys.of("developer2"), "Idempotency-Key": "shared-key"},
    )

    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert await incident_count(client, keys) == 2


async def test_a_refusal_that_depends_on_the_moment_is_not_kept(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    """A 403 (wrong role) is not stored: the same key works once the caller may act."""
    refused = await client.post(
        "/api/v1/incidents", json=INCIDENT, headers={**keys.of("viewer"), "Idempotency-Key": "k"}
    )
    assert refused.status_code == 403
    assert "idempotent-replayed" not in refused.headers


@pytest.mark.parametrize("bad", ["", "x" * 256, "with space", "tab\there"])
async def test_an_unusable_key_is_a_400(client: httpx.AsyncClient, keys: Keys, bad: str) -> None:
    answer = await create(client, keys, bad)

    assert answer.status_code == 400
    assert answer.json()["code"] == "idempotency_key_invalid"
    assert await incident_count(client, keys) == 0


async def test_concurrent_first_uses_run_once(client: httpx.AsyncClient, keys: Keys) -> None:
    answers = await asyncio.gather(*(create(client, keys, "race") for _ in range(8)))

    assert {a.status_code for a in answers} <= {201, 409}
    made = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(made) == 1
    assert await incident_count(client, keys) == 1


async def test_two_replicas_share_keys_through_redis(
    make_app: AppFactory, keys: Keys, services: Services, redis_prefix: str
) -> None:
    async with (
        make_app(**redis_settings(redis_prefix)) as (_, replica_a),
        make_app(**redis_settings(redis_prefix)) as (_, replica_b),
    ):
        first = await create(replica_a, keys, "fleet")
        again = await create(replica_b, keys, "fleet")
        other = await create(replica_b, keys, "fleet", {**INCIDENT, "title": "changed"})
        raced = await asyncio.gather(
            *(create(r, keys, "fleet-race") for r in (replica_a, replica_b) * 3)
        )

        assert first.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert other.json()["code"] == "idempotency_key_reused"
        assert len({a.json()["id"] for a in raced if a.status_code == 201}) == 1
        assert await incident_count(replica_a, keys) == 2


async def test_a_stored_answer_lives_for_the_time_to_live_in_redis(
    redis: Redis, redis_prefix: str
) -> None:
    store = RedisIdempotencyStore(redis, prefix=redis_prefix)
    assert await store.claim("k", fingerprint="f", lease_seconds=35) is None
    pending_ttl = await redis.pttl(f"{redis_prefix}k")
    answer = StoredResponse(status=201, headers=(("content-type", "application/json"),), body=b"{}")
    await store.complete("k", record=IdempotencyRecord("f", answer), ttl_seconds=86400)

    assert 30_000 < pending_ttl <= 35_000  # a dead replica's claim lapses within its lease
    assert 86_000 < await redis.ttl(f"{redis_prefix}k") <= 86_400
    assert await store.claim("k", fingerprint="f", lease_seconds=35) == IdempotencyRecord(
        "f", answer
    )


async def test_a_key_in_memory_expires_after_its_time_to_live() -> None:
    now = [1000.0]
    store = MemoryIdempotencyStore(monotonic=lambda: now[0])
    answer = StoredResponse(status=201, headers=(), body=b"{}")
    await store.claim("k", fingerprint="f", lease_seconds=35)
    await store.complete("k", record=IdempotencyRecord("f", answer), ttl_seconds=86400)

    now[0] += 86399
    assert await store.claim("k", fingerprint="other", lease_seconds=35) is not None
    now[0] += 2
    assert await store.claim("k", fingerprint="other", lease_seconds=35) is None


async def test_an_issued_api_key_is_never_kept_for_a_replay(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    headers = {**keys.of("admin"), "Idempotency-Key": "new-key"}
    body = {"name": "ci-bot", "role": "developer"}
    first = await client.post("/api/v1/keys", json=body, headers=headers)
    again = await client.post("/api/v1/keys", json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in again.headers
    assert again.json().get("key") != first.json()["key"]


EVENT = {"kind": "ci_failure", "title": "deploy failed", "repo": "acme/shop", "pipeline": "deploy"}


async def post_event(
    http: httpx.AsyncClient, keys: Keys, key: str, *, who: str = "developer", **change: Any
) -> httpx.Response:
    headers = {**keys.of(who), "Idempotency-Key": key}
    return await http.post("/api/v1/events", json={**EVENT, **change}, headers=headers)


async def deliveries(http: httpx.AsyncClient, keys: Keys) -> list[dict[str, Any]]:
    listed = await http.get("/api/v1/deliveries", headers=keys.of("admin"))
    items: list[dict[str, Any]] = listed.json()["items"]
    return items


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/ci/event"])
async def test_an_event_key_reused_with_another_body_is_refused_with_422(
    client: httpx.AsyncClient, keys: Keys, path: str
) -> None:
    # Events are deduplicated by the inbox rather than the middleware, by the same rule.
    bodies = {
        "/api/v1/events": (EVENT, {**EVENT, "title": "another failure"}),
        "/api/ci/event": (
            {"repo": "acme/shop", "status": "failure", "workflow": "deploy"},
            {"repo": "acme/shop", "status": "failure", "workflow": "lint"},
        ),
    }[path]
    headers = {**keys.of("developer"), "Idempotency-Key": "event-reused"}
    first = await client.post(path, json=bodies[0], headers=headers)
    other = await client.post(path, json=bodies[1], headers=headers)
    again = await client.post(path, json=bodies[0], headers=headers)

    assert first.status_code == 202, first.text
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_key_reused"
    assert again.status_code == 200, again.text
    assert again.json()["delivery_id"] == first.json()["delivery_id"]
    assert len(await deliveries(client, keys)) == 1


async def test_two_callers_sending_events_under_the_same_key_each_have_theirs_stored(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    mine = await post_event(client, keys, "deploy-42")
    theirs = await post_event(
        client, keys, "deploy-42", who="developer2", title="lint failed", pipeline="lint"
    )

    assert (mine.status_code, theirs.status_code) == (202, 202), theirs.text
    assert mine.json()["delivery_id"] != theirs.json()["delivery_id"]
    await services.processor.run_due()
    listed = await client.get("/api/v1/incidents", headers=keys.of("viewer"))
    assert sorted(i["title"] for i in listed.json()["items"]) == ["deploy failed", "lint failed"]


async def test_a_replayable_answer_is_kept_for_24_hours_by_default(
    make_app: AppFactory, keys: Keys, redis: Redis, redis_prefix: str
) -> None:
    async with make_app(**redis_settings(redis_prefix)) as (_, http):
        made = await create(http, keys, "kept-a-day")
    assert made.status_code == 201

    [kept] = [name async for name in redis.scan_iter(match=f"{redis_prefix}idem:*")]
    assert 24 * 3600 - 120 < await redis.ttl(kept) <= 24 * 3600
