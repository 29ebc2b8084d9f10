"""Live updates for the console: a small publish/subscribe interface and its in-process form.

The dashboard feed publishes here and every server-sent-events stream subscribes. Across
replicas a Redis pub/sub implementation of the same `LiveUpdates` port can take its place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from dragon.domain.ports import LiveEvent

_QUEUE_SIZE = 8


class InProcessBroadcaster:
    """Fan-out to the subscribers of this process. A slow subscriber loses its oldest events,
    never blocks the publisher: the newest figures are the ones worth showing."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[LiveEvent]] = set()
        self.last: dict[str, LiveEvent] = {}

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    async def publish(self, event: LiveEvent) -> None:
        self.last[event.topic] = event
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)
