"""Every request has a deadline for its answer to start. One that runs past it is cut: the caller
gets a 503 `request_timeout` with Retry-After, and the cut is logged. An answer already under way
(a stream) is not cut.
Work cut this way rolls back: the unit of work never committed it.

The request runs as a task of its own so the answer leaves at the deadline even when the work
cannot be interrupted at once (a call blocked inside a database driver's thread): the task is
cancelled, finishes its clean-up in the background, and whatever it sends after the cut is
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.metrics import DEADLINE_EXCEEDED, UNMATCHED_ROUTE
from dragon.api.problems import problem

log = structlog.get_logger("dragon.api")


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self._cut: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        cut = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        try:
            done, _ = await asyncio.wait((task,), timeout=self.seconds)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if done:
            task.result()
            return
        if started:
            # The answer is under way (a stream, say): the deadline bounds the wait for its
            # first byte, not how long it may flow.
            await task
            return
        cut = True
        task.cancel()
        self._cut.add(task)
        task.add_done_callback(self._forget)
        route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        DEADLINE_EXCEEDED.labels(route).inc()
        log.warning(
            "request_deadline_exceeded",
            method=scope["method"],
            path=scope["path"],
            deadline_seconds=self.seconds,
        )
        response = problem(
            503,
            "request_timeout",
            f"the request ran past its {self.seconds:g}-second deadline; retry shortly",
            correlation_id=scope.get("state", {}).get("correlation_id"),
            headers={"Retry-After": "5"},
        )
        await response(scope, receive, send)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._cut.discard(task)
        with contextlib.suppress(asyncio.CancelledError):
            # Retrieved so asyncio does not report it; the cut itself was logged.
            task.exception()
