"""The embedded worker gives acceptance the priority: while deliveries keep arriving it waits
for a lull (or, at the longest, a set time), and the backlog drains once they stop."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import orjson

from dragon.domain.enums import DeliveryStatus
from dragon.domain.ports import DeliveryQuery, Page
from dragon.services.container import Services
from dragon.workers.deliveries import run_delivery_worker
from tests.api.test_ingestion import fixture, github_headers


async def post_failure(client: httpx.AsyncClient, delivery: str) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    response = await client.post(
        "/webhooks/github", content=body, headers=github_headers(body, "workflow_run", delivery)
    )
    assert response.status_code == 202, response.text


async def pending(services: Services) -> int:
    found, _ = await services.ingest.find(
        DeliveryQuery(status=DeliveryStatus.PENDING, page=Page(limit=100))
    )
    return len(found)


async def test_lull_returns_at_once_when_nothing_arrived(services: Services) -> None:
    started = time.monotonic()
    assert await services.ingest.lull(quiet=5.0, longest=10.0) is True
    assert time.monotonic() - started < 1.0


async def test_lull_waits_for_quiet_after_a_delivery_and_gives_up_at_the_longest(
    client: httpx.AsyncClient, services: Services
) -> None:
    started = time.monotonic()
    await post_failure(client, "lull-1")
    assert await services.ingest.lull(quiet=0.3, longest=10.0) is True
    assert time.monotonic() - started >= 0.3  # it arrived after `started`

    async def keep_arriving() -> None:
        for n in range(100):
            await post_failure(client, f"lull-busy-{n}")
            await asyncio.sleep(0.02)

    arrivals = asyncio.create_task(keep_arriving())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    assert await services.ingest.lull(quiet=3.0, longest=0.5) is False
    assert time.monotonic() - started >= 0.45
    arrivals.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await arrivals


async def test_the_worker_defers_to_arrivals_then_drains_the_backlog(
    client: httpx.AsyncClient, services: Services
) -> None:
    worker = asyncio.create_task(
        run_delivery_worker(
            services, poll_seconds=0.05, lull_seconds=3.0, yield_at_most_seconds=60.0
        )
    )
    try:
        for n in range(30):
            await post_failure(client, f"busy-{n}")
            await asyncio.sleep(0.02)
        # Arrivals never paused for 3 s: the worker has not taken any of them.
        assert await pending(services) == 30
        for _ in range(300):  # the backlog drains once arrivals stop (30 s at most)
            if not await pending(services):
                break
            await asyncio.sleep(0.1)
        assert await pending(services) == 0
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
