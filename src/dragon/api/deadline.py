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
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.metrics import DEADLINE_EXCEEDED, UNMATCHED_ROUTE
from dragon.api.problems import problem

log = structlog.get_logger("dragon.api")


class CancelAtDeadline:
    """The deadline for a handler whose every wait can be cancelled at once (futures, not
    calls blocked in a driver's thread): one timer cancels the request's own task, where
    the middleware runs the request as a task of its own. `expired` tells that cancellation
    from any other; the handler then answers with `answer_cut`."""

    __slots__ = ("_task", "_timer", "expired")

    def __init__(self, seconds: float | None) -> None:
        self.expired = False
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if seconds is not None:
            self._task = asyncio.current_task()
            self._timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if self._task is not None:
            self._task.cancel()

    def claim(self) -> bool:
        """In the handler's `except CancelledError`: whether the deadline was the cause, in
        which case the cancellation is taken back and the handler answers."""
        if self.expired and self._task is not None:
            self._task.uncancel()
            return True
        return False

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


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
    """`bounded_within` lists path prefixes whose handlers bound their own waits by the same
    deadline and answer alike (the webhook receivers: a task per delivery cost more than
    storing it), so this layer passes them on untouched."""

    def __init__(
        self, app: ASGIApp, *, seconds: float, bounded_within: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.seconds = seconds
        self.bounded_within = bounded_within
        self._cut: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.bounded_within and scope["path"].startswith(self.bounded_within)
        ):
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
