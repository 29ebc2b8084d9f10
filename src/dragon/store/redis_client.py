"""The one Redis connection pool of a process (redis-py asyncio), with short timeouts: a slow
or dead Redis must cost a request milliseconds, never its whole deadline."""

from __future__ import annotations

from redis.asyncio import Redis


def connect_redis(url: str, *, timeout_seconds: float) -> Redis:
    return Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        # A failed command is reported at once; the circuit breaker decides when to try again.
        retry_on_timeout=False,
    )
