"""Part of app.py's wiring: what replicas share through Redis (rate limits, idempotency)."""

from __future__ import annotations

from dataclasses import dataclass

from dragon.api.rate_limits import RateLimiter, SharedStorage
from dragon.domain.ports import IdempotencyStore
from dragon.services.container import Services
from dragon.settings import Settings
from dragon.store.idempotency import (
    FallbackIdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
)
from dragon.store.redis_client import RedisGuard, connect_redis


@dataclass(frozen=True)
class SharedState:
    """What replicas share through Redis, or each process keeps when there is none."""

    redis: RedisGuard | None
    rate_limiter: RateLimiter
    idempotency: IdempotencyStore


def shared_state(settings: Settings, services: Services) -> SharedState:
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
    return SharedState(guard, RateLimiter(rates, shared=shared), idempotency)
