"""The delivery worker: processes due deliveries, woken at once by each new one and otherwise
every `poll_seconds` (retries come due by time).

Acceptance comes first. Inside a server process the worker shares one event loop (and, on
SQLite, the one writer connection) with the accept path, so while deliveries keep arriving it
waits for a lull, then drains the backlog in large batches, checking for new arrivals between
batches. Under unbroken load it still takes one small batch every `YIELD_AT_MOST_SECONDS`
(short enough not to hold up accepts for long), so the backlog is worked on; everything it
defers is durable in the inbox already.
"""

from __future__ import annotations

import asyncio

import structlog

from dragon.services.container import Services
from dragon.services.ingest import wait_for

log = structlog.get_logger("dragon.worker")
BATCH = 200
BATCH_UNDER_LOAD = 20
# A lull: this long without a new delivery.
LULL_SECONDS = 0.25
YIELD_AT_MOST_SECONDS = 5.0


async def run_delivery_worker(
    services: Services,
    *,
    poll_seconds: float,
    batch: int = BATCH,
    batch_under_load: int = BATCH_UNDER_LOAD,
    lull_seconds: float = LULL_SECONDS,
    yield_at_most_seconds: float = YIELD_AT_MOST_SECONDS,
) -> None:
    wake = asyncio.Event()
    services.ingest.on_accepted(wake.set)
    while True:
        try:
            while True:
                quiet = await services.ingest.lull(
                    quiet=lull_seconds, longest=yield_at_most_seconds
                )
                size = batch if quiet else batch_under_load
                if await services.processor.run_due(batch=size) == 0:
                    break  # nothing due: sleep until woken or the next poll
                services.triage.nudge()  # incidents it opened are triaged at once
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the next pass retries
            log.warning("delivery_worker_pass_failed", error_type=type(exc).__name__)
        await wait_for(wake, poll_seconds)
