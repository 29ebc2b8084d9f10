"""Rate limits per route scope, on the `limits` library: per client address for public routes,
per principal for authenticated ones. Every limited response carries X-RateLimit-Limit,
X-RateLimit-Remaining and X-RateLimit-Reset (RequestContextMiddleware adds them); a refusal is
the 429 problem `rate_limited` with Retry-After.

The storage is memory in embedded mode. With Redis (`shared_storage`) the counts are shared by
every replica; while Redis is unusable (the guard's breaker open) each process counts on its own
in memory, so limits hold per replica rather than not at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from limits import RateLimitItem
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request

from dragon.domain.errors import RateLimited
from dragon.store.redis_client import RedisGuard

STATE_KEY = "rate_limit"


@dataclass(frozen=True)
class RateVerdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # epoch seconds when the window has room again
    retry_after: int  # seconds; 0 when allowed

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


@dataclass(frozen=True)
class SharedStorage:
    """Where replicas share their counts: a Redis URL, its key prefix and timeout, and the
    guard whose breaker says when to fall back to this process's memory."""

    redis_url: str
    key_prefix: str
    timeout_seconds: float
    guard: RedisGuard


class RateLimiter:
    def __init__(
        self,
        rates: Mapping[str, RateLimitItem],
        storage_uri: str = "memory://",
        *,
        shared: SharedStorage | None = None,
    ) -> None:
        self._rates = dict(rates)
        # The limits library names its asyncio storages `async+<scheme>://`.
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        storage = storage_from_string(uri)
        assert isinstance(storage, Storage)
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._shared: MovingWindowRateLimiter | None = None
        self._guard = shared.guard if shared else None
        if shared is not None:
            redis_storage = RedisStorage(
                f"async+{shared.redis_url}",
                implementation="redispy",
                key_prefix=f"{shared.key_prefix}ratelimit",
                socket_timeout=shared.timeout_seconds,
                socket_connect_timeout=shared.timeout_seconds,
            )
            self._shared = MovingWindowRateLimiter(redis_storage)

    def rate(self, scope: str) -> RateLimitItem:
        try:
            return self._rates[scope]
        except KeyError:
            raise KeyError(f"no rate configured for scope {scope!r}") from None

    async def hit(self, *, scope: str, key: str) -> RateVerdict:
        item = self.rate(scope)
        shared, guard = self._shared, self._guard
        if shared is None or guard is None:
            return await self._hit(self._strategy, item, scope=scope, key=key)
        return await guard.run(
            lambda: self._hit(shared, item, scope=scope, key=key),
            lambda: self._hit(self._strategy, item, scope=scope, key=key),
        )

    @staticmethod
    async def _hit(
        strategy: MovingWindowRateLimiter, item: RateLimitItem, *, scope: str, key: str
    ) -> RateVerdict:
        allowed = await strategy.hit(item, scope, key)
        stats = await strategy.get_window_stats(item, scope, key)
        reset_at = math.ceil(stats.reset_time)
        return RateVerdict(
            allowed=allowed,
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_at=reset_at,
            retry_after=0 if allowed else max(1, math.ceil(stats.reset_time - time.time())),
        )


async def enforce(
    limiter: RateLimiter, *, scope: str, key: str, state: dict[str, Any]
) -> RateVerdict:
    """Count one request against `scope`; the verdict goes into the request state (for the
    X-RateLimit headers), and past the rate the request is refused."""
    verdict = await limiter.hit(scope=scope, key=key)
    state[STATE_KEY] = verdict
    if not verdict.allowed:
        raise RateLimited(
            f"more than {verdict.limit} requests in this window for {scope}; "
            f"retry after {verdict.retry_after} s",
            retry_after=verdict.retry_after,
            scope=scope,
        )
    return verdict


def rate_limit(
    scope: str, *, by: Literal["address", "principal"]
) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: count this request against `scope`, refuse it past the rate."""

    async def limited(request: Request) -> None:
        limiter: RateLimiter = request.app.state.rate_limiter
        if by == "principal" and getattr(request.state, "caller", None) is not None:
            key = f"principal:{request.state.caller.principal.id}"
        else:
            key = f"address:{request.client.host if request.client else 'unknown'}"
        await enforce(limiter, scope=scope, key=key, state=request.scope.setdefault("state", {}))

    return limited
