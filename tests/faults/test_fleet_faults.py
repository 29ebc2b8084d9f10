"""Faults in production mode, with real processes on loopback: `dragon serve` replicas and
`dragon worker` processes sharing one store and a private `redis-server` each test starts and
stops by PID (never the machine's shared Redis). Every test is bounded in time and stops what
it started.

- kill -9 an API replica under load: every delivery that got a 2xx is processed exactly once;
- SIGTERM under load: the replica drains and exits 0, and no accepted delivery is lost;
- Redis killed under load: ingestion goes on, readiness says `degraded`, and comes back to `ok`
  when Redis returns.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.faults.conftest import PrivateRedis, StartWorkers
from tests.integration.test_ingest_processes import (
    Launch,
    create_admin_key,
    dragon_env,
    signed,
    wait_until_nothing_pending,
    workflow_run_failure,
)

pytestmark = pytest.mark.one_pass(
    "postgresql", "a fleet of replicas and workers is the production topology, on PostgreSQL"
)

LOAD_SECONDS = 3.0
CONCURRENCY = 8


async def load(
    urls: list[str], *, seconds: float, during: Callable[[], Awaitable[None]] | None = None
) -> dict[str, str]:
    """Signed deliveries from CONCURRENCY senders spread over `urls` for `seconds`; `during`
    runs halfway. Returns every delivery answered 2xx, as GitHub delivery id → Dragon's id.
    Senders whose replica is gone move on to the next one, as a load balancer would."""
    accepted: dict[str, str] = {}
    stop_at = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def sender(offset: int) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < stop_at:
                number = next(counter)
                delivery = str(uuid.uuid4())
                body = workflow_run_failure(
                    run_id=50_000 + number, attempt=1, workflow=f"wf-{number % 7}", branch="main"
                )
                url = urls[(offset + number) % len(urls)]
                try:
                    answer = await http.post(
                        f"{url}/webhooks/github", content=body, headers=signed(body, delivery)
                    )
                except httpx.TransportError:
                    await asyncio.sleep(0.01)
                    continue
                if 200 <= answer.status_code < 300:
                    accepted[delivery] = answer.json()["delivery_id"]

    async def fault() -> None:
        if during is not None:
            await asyncio.sleep(seconds / 2)
            await during()

    await asyncio.gather(*(sender(i) for i in range(CONCURRENCY)), fault())
    return accepted


async def stored_deliveries(url: str) -> dict[str, tuple[str, int]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT id, status, attempts FROM deliveries"))
            return {str(i): (str(s), int(a)) for i, s, a in rows}
    finally:
        await engine.dispose()


async def test_kill_9_of_an_api_replica_under_load_loses_no_acknowledged_delivery(
    database_url: str,
    tmp_path: Path,
    launch: Launch,
    private_redis: PrivateRedis,
    workers: StartWorkers,
) -> None:
    env = dragon_env(
        database_url, redis_url=private_redis.url, worker_enabled="false", worker_poll_seconds="0.2"
    )
    admin = await create_admin_key(env)
    doomed = await launch(env, "api-doomed")
    survivor = await launch(env, "api-survivor")
    await workers(env, 2)

    accepted = await load([doomed.url, survivor.url], seconds=LOAD_SECONDS, during=doomed.crash)

    assert doomed.process.returncode == -9
    assert len(accepted) >= 5
    async with httpx.AsyncClient(base_url=survivor.url, timeout=10) as http:
        await wait_until_nothing_pending(http, admin)
    stored = await stored_deliveries(database_url)
    # Every acknowledged delivery is stored once and was processed once, by one worker.
    assert set(accepted.values()) <= set(stored)
    assert len(set(accepted.values())) == len(accepted)
    for delivery_id in accepted.values():
        assert stored[delivery_id] == ("processed", 1), delivery_id


async def test_sigterm_under_load_drains_exits_0_and_loses_no_accepted_delivery(
    database_url: str, tmp_path: Path, launch: Launch
) -> None:
    env = dragon_env(database_url, worker_enabled="false")
    server = await launch(env, "api")

    async def terminate() -> None:
        server.process.terminate()

    accepted = await load([server.url], seconds=LOAD_SECONDS, during=terminate)
    code = await asyncio.wait_for(server.process.wait(), timeout=30)

    assert code == 0
    assert len(accepted) >= 5
    stored = await stored_deliveries(database_url)
    assert set(accepted.values()) <= set(stored)


async def test_redis_killed_under_load_ingestion_goes_on_degraded_then_recovers(
    database_url: str, tmp_path: Path, launch: Launch, private_redis: PrivateRedis
) -> None:
    env = dragon_env(
        database_url,
        redis_url=private_redis.url,
        worker_enabled="false",
        readiness_cache_seconds="0",
        redis_timeout_seconds="0.2",
    )
    replicas = [await launch(env, "api-a"), await launch(env, "api-b")]
    urls = [r.url for r in replicas]

    accepted = await load(urls, seconds=LOAD_SECONDS, during=private_redis.kill)
    async with httpx.AsyncClient(timeout=5) as http:
        degraded = [(await http.get(f"{url}/readyz")).json() for url in urls]
        # Without Redis deliveries are still accepted; on a loaded machine the first may take
        # longer than one short burst, so bursts go on until one is (20 s at most).
        after_kill: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while not after_kill and time.monotonic() < deadline:
            after_kill = await load(urls, seconds=0.5)
        await private_redis.start()  # the same port again
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [(await http.get(f"{url}/readyz")).json()["status"] for url in urls]
            if states == ["ok", "ok"]:
                break
            await asyncio.sleep(0.5)

    assert all(r["status"] == "degraded" for r in degraded), degraded
    assert all("redis" in r["degraded"] for r in degraded)
    assert len(after_kill) >= 1  # ingestion went on without Redis
    assert states == ["ok", "ok"]
    stored = await stored_deliveries(database_url)
    assert set(accepted.values()) | set(after_kill.values()) <= set(stored)
