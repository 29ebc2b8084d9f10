"""The notification worker: routes the outbox, sends due notifications with retries, reminds
and escalates pending approvals. It runs beside the delivery worker and never inside a
request, so a slow or failing channel cannot slow ingestion."""

from __future__ import annotations

import asyncio

import structlog

from dragon.services.container import Services
from dragon.workers.stopping import pause, stopped

log = structlog.get_logger("dragon.worker")


async def run_notification_worker(
    services: Services, *, poll_seconds: float, stopping: asyncio.Event | None = None
) -> None:
    """Runs until cancelled; a failed pass is logged and the next one retries."""
    while not stopped(stopping):
        try:
            while not stopped(stopping) and await services.notifications.run_due() > 0:
                pass  # drain what is due before sleeping
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the next pass retries
            log.warning("notification_worker_pass_failed", error_type=type(exc).__name__)
        await pause(poll_seconds, stopping=stopping)
