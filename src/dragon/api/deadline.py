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
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.metrics import DEADLINE_EXCEEDED, UNMATCHED_ROUTE
from dragon.api.problems import problem

log = structlog.get_logger("dragon.api")


class DeadlineWatch:
    """The deadline for handlers whose every wait can be cancelled at once (futures, not calls
    blocked in a driver's thread): their requests' own tasks are cancelled when they run past
    it, where the middleware runs each request as a task of its own. One timer looks over
    every request in flight a few times per deadline, so a request costs a dictionary entry
    (a task, or a timer each, cost more than storing a webhook delivery); a request is cut
    within a tenth of the deadline after it passed. A cut handler answers with `answer_cut`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = seconds / 10
        self._running: dict[asyncio.Task[Any], float] = {}
        self._cut: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._running[task] = time.monotonic() + self.seconds
            if self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._tick, self._look)
        return task

    def leave(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._running.pop(task, None)
            self._cut.discard(task)

    def claim(self, task: asyncio.Task[Any] | None) -> bool:
        """In the handler's `except CancelledError`: whether the deadline was the cause, in
        which case the cancellation is taken back and the handler answers."""
        if task is None or task not in self._cut:
            return False
        self._cut.discard(task)
        task.uncancel()
        return True

    def _look(self) -> None:
        self._timer = None
        now = time.monotonic()
        for task, deadline in list(self._running.items()):
            if deadline <= now:
                del self._running[task]
                self._cut.add(task)
                task.cancel()
        if self._running:
            self._timer = asyncio.get_running_loop().call_later(self._tick, self._look)


async def answer_cut(scope: Scope, receive: Receive, send: Send, *, seconds: float) -> None:
    """Count, log and answer a request cut at its deadline: 503 `request_timeout`."""
    route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
    DEADLINE_EXCEEDED.labels(route).inc()
    log.warning(
        "request_deadline_exceeded",
        method=scope["method"],
        path=scope["path"],
        deadline_seconds=seconds,
    )
    response = problem(
        503,
        "request_timeout",
        f"the request ran past its {seconds:g}-second deadline; retry shortly",
        correlation_id=scope.get("state", {}).get("correlation_id"),
        headers={"Retry-After": "5"},
    )
    await response(scope, receive, send)


class DeadlineMiddleware:
    """The deadline for every request that reaches the stack (the webhook fast path, outside
    it, keeps the same deadline for the deliveries it serves with a DeadlineWatch)."""

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
        await answer_cut(scope, receive, send, seconds=self.seconds)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._cut.discard(task)
        with contextlib.suppress(asyncio.CancelledError):
            # Retrieved so asyncio does not report it; the cut itself was logged.
            task.exception()
