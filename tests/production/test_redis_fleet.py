"""Redis shared by replicas, and Redis gone: rate limits are counted across replicas; with Redis
unreachable or hanging Dragon keeps deciding with per-process limits and keys, /readyz says
`degraded` (200) with the reason, no request pays Redis's timeout twice, and everything returns
to Redis once it is back."""

from __future__ import annotations

import time

import httpx

from tests.api.test_decisions_api import pending, verdict
from tests.conftest import FakeClock, Keys
from tests.production.conftest import REDIS_URL, AppFactory, RedisLink, with_redis
from tests.support.ports import free_port

INCIDENT = {"title": "queue consumers stuck", "severity": "SEV3"}


# Two approvals an hour: the third verdict shows whether replicas counted together.
LIMITS = {"rate_limits": "approvals=2/hour"}


async def test_replicas_count_one_rate_limit_together_through_redis(
    make_app: AppFactory, keys: Keys, redis_prefix: str
) -> None:
    async with (
        make_app(**with_redis(REDIS_URL, redis_prefix, **LIMITS)) as (_, replica_a),
        make_app(**with_redis(REDIS_URL, redis_prefix, **LIMITS)) as (_, replica_b),
    ):
        decisions = [await pending(replica_a, keys) for _ in range(3)]
        first = await verdict(replica_a, keys, decisions[0]["id"], "approver")
        second = await verdict(replica_b, keys, decisions[1]["id"], "approver")
        third = await verdict(replica_a, keys, decisions[2]["id"], "approver")
        ready = await replica_b.get("/readyz")

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers["x-ratelimit-remaining"] == "0"  # counted with replica A's verdict
    assert third.status_code == 429
    assert third.json()["code"] == "rate_limited"
    assert ready.json()["status"] == "ok"
    assert ready.json()["checks"]["redis"] == "ok"


async def test_with_redis_unreachable_dragon_decides_on_per_process_limits_and_says_degraded(
    make_app: AppFactory, keys: Keys, redis_prefix: str
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with make_app(**with_redis(dead, redis_prefix, **LIMITS)) as (_, http):
        decisions = [await pending(http, keys) for _ in range(3)]
        answers = [await verdict(http, keys, d["id"], "approver") for d in decisions]
        headers = {**keys.of("developer"), "Idempotency-Key": "while-redis-is-down"}
        made = await http.post("/api/v1/incidents", json=INCIDENT, headers=headers)
        again = await http.post("/api/v1/incidents", json=INCIDENT, headers=headers)
        ready = await http.get("/readyz")

    assert [a.status_code for a in answers] == [200, 200, 429]  # the limit holds per process
    assert made.status_code == 201
    assert again.json()["id"] == made.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert "redis unreachable" in body["degraded"]["redis"]
    assert body["breakers"]["redis"] == "open"
    assert body["checks"]["database"] == "ok"


async def test_a_hanging_redis_costs_one_request_its_timeout_and_no_other(
    make_app: AppFactory, keys: Keys, redis_prefix: str, redis_link: RedisLink
) -> None:
    redis_link.hanging = True
    timeout = 0.5
    settings = with_redis(redis_link.url, redis_prefix, redis_timeout_seconds=timeout, **LIMITS)
    async with make_app(**settings) as (_, http):
        decisions = [await pending(http, keys) for _ in range(4)]
        durations = []
        for decision in decisions[:2]:
            started = time.perf_counter()
            answer = await http.post(
                f"/api/v1/decisions/{decision['id']}/approve",
                json={"justification": "looks right"},
                # The verdict is rate limited and idempotency-keyed: two Redis uses per request.
                headers={**keys.of("approver"), "Idempotency-Key": decision["id"]},
            )
            durations.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text

    assert timeout <= durations[0] < 2 * timeout  # paid once, not once per Redis use
    assert durations[1] < timeout  # the open breaker spares the next request


async def test_dragon_returns_to_redis_when_it_is_back(
    make_app: AppFactory,
    keys: Keys,
    clock: FakeClock,
    redis_prefix: str,
    redis_link: RedisLink,
) -> None:
    async with make_app(**with_redis(redis_link.url, redis_prefix, **LIMITS)) as (_, http):
        assert (await http.get("/readyz")).json()["status"] == "ok"

        await redis_link.down()
        degraded = (await http.get("/readyz")).json()
        created = await http.post("/api/v1/incidents", json=INCIDENT, headers=keys.of("developer"))

        await redis_link.up()
        clock.advance(seconds=6)  # past the breaker's cool-down: the next use is its probe
        recovered = (await http.get("/readyz")).json()
        decision = await pending(http, keys)
        limited = await verdict(http, keys, decision["id"], "approver")

    assert degraded["status"] == "degraded"
    assert created.status_code == 201  # Dragon kept working without Redis
    assert recovered["status"] == "ok"
    assert recovered["breakers"]["redis"] == "closed"
    assert limited.status_code == 200
    assert limited.headers["x-ratelimit-remaining"] == "1"


async def test_a_configured_webhook_limit_counts_each_sender_address(
    make_app: AppFactory, redis_prefix: str
) -> None:
    async with make_app(**with_redis(REDIS_URL, redis_prefix, rate_limits="webhooks=2/minute")) as (
        app,
        http,
    ):
        answers = [
            await http.post("/webhooks/github", content=b"{}", headers={"X-GitHub-Event": "ping"})
            for _ in range(3)
        ]
        transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as other:
            elsewhere = await other.post(
                "/webhooks/github", content=b"{}", headers={"X-GitHub-Event": "ping"}
            )

    assert [a.status_code for a in answers[:2]] == [401, 401]  # unsigned, refused by signature
    assert answers[2].status_code == 429
    assert answers[2].json()["code"] == "rate_limited"
    assert elsewhere.status_code == 401  # another sender has its own count
