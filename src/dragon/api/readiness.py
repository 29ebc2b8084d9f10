"""Readiness: the store's checks and Redis's, run in parallel and reused for a few seconds, so
probes from every load balancer and orchestrator cost the store one check per interval.

Redis is optional to readiness: without it Dragon still ingests and decides (per-process rate
limits and idempotency keys), so a dead Redis makes the answer 200 `degraded`, with the reason,
never 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dragon.domain.ports import StoreHealth
from dragon.store.breaker_board import RedisBreakerBoard
from dragon.store.redis_client import RedisGuard

OPTIONAL = frozenset({"redis"})


@dataclass(frozen=True)
class ReadinessReport:
    checks: dict[str, str]
    # Every process's breakers (workers' too) from the fleet's board: process -> name -> state.
    fleet_breakers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def failing(self) -> dict[str, str]:
        return {k: v for k, v in self.checks.items() if v != "ok" and k not in OPTIONAL}

    @property
    def degraded(self) -> dict[str, str]:
        return {k: v for k, v in self.checks.items() if v != "ok" and k in OPTIONAL}


class Readiness:
    def __init__(
        self,
        store: StoreHealth,
        *,
        redis: RedisGuard | None,
        cache_seconds: float,
        board: RedisBreakerBoard | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._redis = redis
        self._board = board
        self._cache_seconds = cache_seconds
        self._now = monotonic
        self._cached: tuple[float, ReadinessReport] | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> ReadinessReport:
        cached = self._cached
        if cached is not None and self._now() < cached[0]:
            return cached[1]
        async with self._lock:  # one check at a time; probes arriving meanwhile share it
            cached = self._cached
            if cached is not None and self._now() < cached[0]:
                return cached[1]
            report = await self._check()
            self._cached = (self._now() + self._cache_seconds, report)
            return report

    async def _check(self) -> ReadinessReport:
        if self._redis is None:
            return ReadinessReport(checks=dict(await self._store.check()))
        if self._board is None:
            store, redis = await asyncio.gather(self._store.check(), self._redis.ping())
            return ReadinessReport(checks={**store, "redis": redis})
        store, redis, fleet = await asyncio.gather(
            self._store.check(), self._redis.ping(), self._board.fleet()
        )
        return ReadinessReport(checks={**store, "redis": redis}, fleet_breakers=fleet)
