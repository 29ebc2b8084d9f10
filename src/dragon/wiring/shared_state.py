"""Part of app.py's wiring: what replicas share through Redis (rate limits, idempotency, live
updates, the breaker board)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from dragon.api.rate_limits import RateLimiter, SharedStorage
from dragon.domain.ports import IdempotencyStore
from dragon.services.container import Services
from dragon.settings import Settings
from dragon.store.breaker_board import RedisBreakerBoard
from dragon.store.idempotency import (
    FallbackIdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
)
from dragon.store.live_redis import RedisLiveUpdates
from dragon.store.redis_client import RedisGuard, connect_redis


@dataclass(frozen=True)
class SharedState:
    """What replicas share through Redis, or each process keeps when there is none."""

    redis: RedisGuard | None
    rate_limiter: RateLimiter
    idempotency: IdempotencyStore
    live: RedisLiveUpdates | None = None
    board: RedisBreakerBoard | None = None


def process_name(role: str) -> str:
    """How this process is named on the fleet's breaker board."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def shared_state(settings: Settings, services: Services, *, role: str = "api") -> SharedState:
    rates = settings.rate_limit_items()
    if settings.redis_url is None:
        return SharedState(None, RateLimiter(rates), MemoryIdempotencyStore())
    url = settings.redis_url.get_secret_value()
    timeout = settings.redis_timeout_seconds
    # One failure opens it: no request pays a dead Redis's timeout twice.
    breaker = services.breakers.breaker("redis", failure_threshold=1, reset_seconds=5.0)
    guard = RedisGuard(connect_redis(url, timeout_seconds=timeout), breaker=breaker)
    shared = SharedStorage(
        redis_url=url, key_prefix=settings.redis_key_prefix, timeout_seconds=timeout, guard=guard
    )
    idempotency = FallbackIdempotencyStore(
        RedisIdempotencyStore(guard.redis, prefix=f"{settings.redis_key_prefix}idem:"),
        fallback=MemoryIdempotencyStore(),
        guard=guard,
    )
    live = RedisLiveUpdates(services.live, guard=guard, channel=f"{settings.redis_key_prefix}live")
    board = RedisBreakerBoard(
        guard,
        prefix=settings.redis_key_prefix,
        process=process_name(role),
        every_seconds=settings.breaker_report_seconds,
    )
    return SharedState(guard, RateLimiter(rates, shared=shared), idempotency, live, board)
