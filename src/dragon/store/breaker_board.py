"""The fleet's circuit breakers in one place: every process (API replica or worker) writes its
breakers' states to Redis every few seconds under a key that expires, and any replica's /readyz
and /metrics read them all. Workers call the integrations but serve no HTTP; without this board
their open breakers would be visible nowhere.

A process that stops reporting drops off the board when its key expires. With Redis down the
board is empty and each replica shows its own breakers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog

from dragon.domain.breaker import BreakerState
from dragon.store.redis_client import RedisGuard

log = structlog.get_logger("dragon.store")
_SEVERITY = {BreakerState.CLOSED.value: 0, BreakerState.HALF_OPEN.value: 1}
_OPEN = 2


class RedisBreakerBoard:
    def __init__(
        self, guard: RedisGuard, *, prefix: str, process: str, every_seconds: float
    ) -> None:
        self._guard = guard
        self._pattern = f"{prefix}breakers:*"
        self._key = f"{prefix}breakers:{process}"
        self.every_seconds = every_seconds
        self._ttl_ms = max(int(every_seconds * 3 * 1000), 1000)

    async def report(self, states: Mapping[str, str]) -> None:
        """This process's states, replacing its last report."""
        if not states:
            return

        async def write() -> None:
            async with self._guard.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key)
                pipe.hset(self._key, mapping=dict(states))  # type: ignore[arg-type]  # invariant key
                pipe.pexpire(self._key, self._ttl_ms)
                await pipe.execute()

        async def skip() -> None:
            return None

        await self._guard.run(write, skip)

    async def fleet(self) -> dict[str, dict[str, str]]:
        """Every reporting process's breakers: process -> breaker -> state."""

        async def read() -> dict[str, dict[str, str]]:
            found: dict[str, dict[str, str]] = {}
            prefix_length = len(self._pattern) - 1
            async for key in self._guard.redis.scan_iter(match=self._pattern, count=100):
                name = key.decode() if isinstance(key, bytes) else str(key)
                states = await self._guard.redis.hgetall(name)
                if not states:
                    continue  # it expired between the scan and the read: that process left
                found[name[prefix_length:]] = {
                    _text(k): _text(v) for k, v in sorted(states.items())
                }
            return found

        async def nothing() -> dict[str, dict[str, str]]:
            return {}

        return await self._guard.run(read, nothing)

    async def run(self, states: Callable[[], Mapping[str, str]]) -> None:
        """Reports `states()` every period for the life of the process."""
        while True:
            try:
                await self.report(states())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a missed report expires; the next one counts
                log.warning("breaker_report_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.every_seconds)


def worst(*views: Mapping[str, str]) -> dict[str, str]:
    """Per breaker name, the worst state any process has it in (open > half open > closed)."""
    merged: dict[str, str] = {}
    for view in views:
        for name, state in view.items():
            if _SEVERITY.get(state, _OPEN) > _SEVERITY.get(merged.get(name, "closed"), _OPEN):
                merged[name] = state
            else:
                merged.setdefault(name, state)
    return dict(sorted(merged.items()))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
