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
CLOSING = LiveEvent(topic="closing", data={})


class InProcessBroadcaster:
    """Fan-out to the subscribers of this process. A slow subscriber loses its oldest events,
    never blocks the publisher: the newest figures are the ones worth showing."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[LiveEvent]] = set()
        self.last: dict[str, LiveEvent] = {}
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    async def publish(self, event: LiveEvent) -> None:
        self.last[event.topic] = event
        for queue in self._queues:
            _offer(queue, event)

    def close(self) -> None:
        """The process is shutting down: every subscriber gets CLOSING, and so does anyone who
        subscribes later, so open streams end instead of holding the shutdown."""
        self.closed = True
        for queue in self._queues:
            _offer(queue, CLOSING)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        if self.closed:
            queue.put_nowait(CLOSING)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)


def _offer(queue: asyncio.Queue[LiveEvent], event: LiveEvent) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)
