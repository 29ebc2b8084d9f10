"""The embedded delivery worker: processes due deliveries, woken at once by each new one and
otherwise every `poll_seconds` (retries come due by time)."""

from __future__ import annotations

import asyncio

import structlog

from dragon.services.container import Services
from dragon.services.ingest import wait_for

log = structlog.get_logger("dragon.worker")


async def run_delivery_worker(services: Services, *, poll_seconds: float) -> None:
    wake = asyncio.Event()
    services.ingest.on_accepted(wake.set)
    while True:
        try:
            while await services.processor.run_due() > 0:
                services.triage.nudge()  # incidents it opened are triaged at once
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the next pass retries
            log.warning("delivery_worker_pass_failed", error_type=type(exc).__name__)
        await wait_for(wake, poll_seconds)
