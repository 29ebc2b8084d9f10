"""A cooperative stop for the worker loops that hold leases or call out (runs, triage,
notifications): on SIGTERM they finish the pass in hand, so a run's action completes and its
lease is released instead of being cut off and left to expire, then return. The process waits
for them up to its shutdown deadline and cancels what is left."""

from __future__ import annotations

import asyncio
import contextlib


def stopped(stopping: asyncio.Event | None) -> bool:
    return stopping is not None and stopping.is_set()


async def pause(
    seconds: float, *, stopping: asyncio.Event | None, wake: asyncio.Event | None = None
) -> None:
    """Sleep `seconds`, less if `wake` or `stopping` is set meanwhile; clears `wake`."""
    events = [e for e in (wake, stopping) if e is not None]
    if not events:
        await asyncio.sleep(seconds)
        return
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    if wake is not None:
        wake.clear()


async def drain(
    cooperative: list[asyncio.Task[None]], *, stopping: asyncio.Event, seconds: float
) -> int:
    """Ask the cooperative loops to stop and wait up to `seconds` for them; returns how many
    were still busy at the deadline (and are then cancelled with the rest by the caller)."""
    stopping.set()
    if not cooperative:
        return 0
    _, busy = await asyncio.wait(cooperative, timeout=seconds)
    return len(busy)
