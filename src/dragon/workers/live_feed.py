"""Publishes the dashboard's figures on the live feed whenever the store changed, while a
console in this process watches."""

from __future__ import annotations

import asyncio

import structlog

from dragon.domain.dashboard import figures_payload
from dragon.domain.ports import LiveEvent
from dragon.services.container import Services

log = structlog.get_logger("dragon.live")
# The feed spends at most about one part in this many of its time computing figures: with a
# million incidents one computation takes a few hundred milliseconds, and under load the
# store changes every period, so a fixed one-second period kept every API process busy.
FEED_DUTY = 20


async def publish_if_changed(services: Services, last_marker: int | None) -> int | None:
    """One step of the feed: publish fresh figures when the change marker moved."""
    marker = await services.dashboard.change_marker()
    if marker != last_marker:
        figures = figures_payload(await services.dashboard.figures())
        await services.live.publish(LiveEvent(topic="dashboard", data=figures))
    return marker


async def feed_step(services: Services, last_marker: int | None) -> int | None:
    """One period of the feed: nothing is asked of the store while no stream of this process
    is subscribed. Each dashboard stream computes the figures it opens with, and a process
    with a watcher runs its own feed, so the consoles on every replica still get each change;
    an API process nobody watches (and under load that is most of them) spends neither its
    own time nor the database's on aggregates over every incident of the window."""
    if not services.live.subscribers:
        return last_marker
    return await publish_if_changed(services, last_marker)


async def run_dashboard_feed(services: Services, *, every_seconds: float) -> None:
    """One poll per process, however many people watch: the store is asked once per period
    and every open stream gets the same figures. The period stretches to FEED_DUTY times what
    the last poll took, so a large store costs the process a bounded share of its time."""
    marker: int | None = None
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            marker = await feed_step(services, marker)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep the feed alive; the next period retries
            log.warning("live_feed_failed", error_type=type(exc).__name__, error=str(exc))
        await asyncio.sleep(max(every_seconds, (loop.time() - started) * FEED_DUTY))
