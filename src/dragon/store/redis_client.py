"""Redis for a fleet (redis-py asyncio): one connection pool per process with short timeouts,
and one guard every Redis call goes through.

Redis holds nothing Dragon cannot do without for a while (rate-limit counts, idempotency keys),
so Redis is never a single point of failure: a call that fails trips the process's `redis`
circuit breaker at once and the caller's fallback (per-process memory) answers instead. While
the breaker is open no request tries Redis, so a dead Redis costs a request its timeout at most
once; every few seconds one probe finds out whether it is back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dragon.domain.breaker import BreakerState, CircuitBreaker

T = TypeVar("T")
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
log = structlog.get_logger("dragon.store")


def connect_redis(url: str, *, timeout_seconds: float) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        # A failed command is reported at once; the circuit breaker decides when to try again.
        retry_on_timeout=False,
    )


class RedisGuard:
    def __init__(self, redis: Redis, *, breaker: CircuitBreaker) -> None:
        self.redis = redis
        self._breaker = breaker
        self._last_error = ""

    @property
    def degraded_reason(self) -> str | None:
        """Why Redis is not in use, or None while it is."""
        if self._breaker.state is BreakerState.CLOSED:
            return None
        return (
            f"redis unreachable ({self._last_error or 'circuit open'}); rate limits, "
            "idempotency keys and live updates are kept per process until it is back"
        )

    async def run(
        self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        """`primary` (a Redis call) if the breaker allows it and it succeeds; else `fallback`."""
        if not self._breaker.allow():
            return await fallback()
        try:
            result = await primary()
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return await fallback()
        self._succeeded()
        return result

    async def ping(self) -> str:
        """ "ok", or why Redis is unusable. Also the breaker's probe when it is half open."""

        async def ping() -> str:
            await self.redis.ping()
            return "ok"

        async def unusable() -> str:
            return self.degraded_reason or "unreachable"

        return await self.run(ping, unusable)

    def allows(self) -> bool:
        """For long-lived uses (a pub/sub listener): may Redis be tried now? Half open, this
        takes the breaker's one probe; report the outcome with `reached` or `lost`."""
        return self._breaker.allow()

    def reached(self) -> None:
        self._succeeded()

    def lost(self, exc: BaseException) -> None:
        self._failed(exc)

    async def close(self) -> None:
        await self.redis.aclose()

    def _failed(self, exc: BaseException) -> None:
        was_closed = self._breaker.state is BreakerState.CLOSED
        self._last_error = type(exc).__name__
        self._breaker.failed()
        if was_closed:
            log.warning("redis_unavailable", error=self._last_error, fallback="per-process")

    def _succeeded(self) -> None:
        if self._breaker.state is not BreakerState.CLOSED:
            log.info("redis_recovered")
        self._breaker.succeeded()
