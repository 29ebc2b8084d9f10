"""Live updates across replicas: the `LiveUpdates` port over Redis pub/sub (redis-py asyncio).

Every event is delivered to this process's subscribers at once (the in-process hub it wraps)
and published on one Redis channel; each process's listener hands the events of *other*
processes to its own subscribers. So a figure published by replica A, or by a worker, reaches a
console connected to replica B. Redis down costs nothing but the fan-out: publishing goes
through the process's `redis` breaker (open: delivery stays in-process, /readyz says degraded),
and the listener reconnects with backoff once the breaker lets a probe through.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from redis.asyncio.client import PubSub

from dragon.domain.ports import LiveEvent, LiveUpdates
from dragon.store.redis_client import REDIS_ERRORS, RedisGuard

log = structlog.get_logger("dragon.live")
_MAX_BACKOFF_SECONDS = 5.0


class RedisLiveUpdates:
    def __init__(self, local: LiveUpdates, *, guard: RedisGuard, channel: str) -> None:
        self._local = local
        self._guard = guard
        self.channel = channel
        # Lets the listener skip what this process published: it was delivered here already.
        self.origin = uuid.uuid4().hex
        self.last = local.last
        self.connected = asyncio.Event()

    @property
    def subscribers(self) -> int:
        return self._local.subscribers

    async def publish(self, event: LiveEvent) -> None:
        await self._local.publish(event)
        message = orjson.dumps({"origin": self.origin, "topic": event.topic, "data": event.data})

        async def fan_out() -> None:
            await self._guard.redis.publish(self.channel, message)

        async def in_process_only() -> None:
            return None

        await self._guard.run(fan_out, in_process_only)

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[LiveEvent]]:
        return self._local.subscribe()

    def close(self) -> None:
        self._local.close()

    async def listen(self) -> None:
        """Runs for the life of the process: relays other processes' events to this one's
        subscribers, reconnecting whenever Redis goes away."""
        backoff = 0.1
        while True:
            if not self._guard.allows():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            try:
                async with self._subscribed() as pubsub:
                    self._guard.reached()
                    backoff = 0.1
                    await self._relay(pubsub)
            except REDIS_ERRORS as exc:
                self._guard.lost(exc)
            finally:
                self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    @contextlib.asynccontextmanager
    async def _subscribed(self) -> AsyncIterator[PubSub]:
        pubsub = self._guard.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            yield pubsub
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    async def _relay(self, pubsub: PubSub) -> None:
        self.connected.set()
        while True:
            # A bounded wait, so a Redis that vanished without a word is noticed by the ping.
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                await pubsub.ping()
                continue
            if message.get("type") != "message":
                continue  # the ping's pong
            event = _decode(message.get("data"))
            if event is not None and event[0] != self.origin:
                await self._local.publish(event[1])


def _decode(data: Any) -> tuple[str, LiveEvent] | None:
    """(origin, event) of a message another Dragon process published; None for anything else."""
    try:
        decoded = orjson.loads(data)
        origin, topic, payload = decoded["origin"], decoded["topic"], decoded["data"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        log.warning("live_message_ignored", reason="not a Dragon live event")
        return None
    if not isinstance(origin, str) or not isinstance(topic, str) or not isinstance(payload, dict):
        log.warning("live_message_ignored", reason="not a Dragon live event")
        return None
    return origin, LiveEvent(topic=topic, data=payload)
