"""/readyz's checks (dragon.api.readiness): the store's check and Redis's run at the same time,
and probes within the cache interval share one check, so a fleet of probes costs the store one
check per interval. The store is the test's real one; Redis is a RESP server on loopback that
answers PING only once the store's check has begun, so checks run one after the other could
never finish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from dragon.api.readiness import Readiness
from dragon.domain.breaker import CircuitBreaker
from dragon.domain.ports import StoreHealth
from dragon.services.container import Services
from dragon.store.redis_client import RedisGuard, connect_redis
from tests.conftest import FakeClock

BOUND_SECONDS = 10.0  # a bound on a wait that never ends if the checks run in turn


class WatchedStore:
    """The real store's health check, counted, that can wait for something before answering."""

    def __init__(self, store: StoreHealth, *, wait_for: asyncio.Event | None = None) -> None:
        self.store = store
        self.wait_for = wait_for
        self.began = asyncio.Event()
        self.checks = 0

    async def check(self) -> dict[str, str]:
        self.checks += 1
        self.began.set()
        if self.wait_for is not None:
            try:
                await asyncio.wait_for(self.wait_for.wait(), BOUND_SECONDS)
            except TimeoutError:
                return {"database": "redis was never pinged while the store was checked"}
        return await self.store.check()


@contextlib.asynccontextmanager
async def redis_answering_ping_after(
    event: asyncio.Event, pinged: asyncio.Event
) -> AsyncIterator[str]:
    """A RESP server: +OK to the client's set-up commands; PING sets `pinged`, then waits for
    `event` (bounded) before +PONG."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readuntil(b"\r\n")
                count = int(header[1:-2])
                parts = []
                for _ in range(count):
                    length = int((await reader.readuntil(b"\r\n"))[1:-2])
                    parts.append((await reader.readexactly(length + 2))[:-2])
                if parts and parts[0].upper() == b"PING":
                    pinged.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), BOUND_SECONDS)
                    writer.write(b"+PONG\r\n")
                else:
                    writer.write(b"+OK\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        await server.wait_closed()


async def test_the_store_and_redis_are_checked_at_the_same_time(services: Services) -> None:
    pinged = asyncio.Event()
    store = WatchedStore(services.health, wait_for=pinged)
    async with redis_answering_ping_after(store.began, pinged) as url:
        guard = RedisGuard(
            connect_redis(url, timeout_seconds=BOUND_SECONDS * 2),
            breaker=CircuitBreaker("redis", clock=FakeClock()),
        )
        try:
            report = await Readiness(store, redis=guard, cache_seconds=0).report()
        finally:
            await guard.close()

    assert report.checks.get("redis") == "ok", report.checks
    assert report.failing == {}, report.checks
    assert report.degraded == {}


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("cache_seconds", [2.0, 5.0])
async def test_probes_within_the_cache_interval_share_one_check(
    services: Services, cache_seconds: float
) -> None:
    store = WatchedStore(services.health)
    monotonic = Monotonic()
    readiness = Readiness(store, redis=None, cache_seconds=cache_seconds, monotonic=monotonic)

    reports = await asyncio.gather(*(readiness.report() for _ in range(50)))
    assert store.checks == 1
    assert all(r.checks == reports[0].checks for r in reports)
    assert reports[0].failing == {}

    monotonic.now += cache_seconds * 0.9
    await readiness.report()
    assert store.checks == 1

    monotonic.now += cache_seconds * 0.2
    await asyncio.gather(*(readiness.report() for _ in range(10)))
    assert store.checks == 2


async def test_with_no_cache_interval_every_probe_checks(services: Services) -> None:
    store = WatchedStore(services.health)
    readiness = Readiness(store, redis=None, cache_seconds=0, monotonic=Monotonic())
    for _ in range(3):
        await readiness.report()
    assert store.checks == 3
