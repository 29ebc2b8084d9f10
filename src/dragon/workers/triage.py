"""The triage worker: proposes a decision for every incident that has none yet, apart from
ingestion (its own transactions, after the incident is committed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from dragon.services.container import Services
from dragon.workers.stopping import pause, stopped

log = structlog.get_logger("dragon.worker")


# After a wake-up, and between passes that were not full: long enough for the incidents of a
# few delivery batches to gather into one triage batch (one claim and read, one write),
# short beside the end-to-end budget of a second.
LINGER_SECONDS = 0.1


async def run_triage_worker(
    services: Services,
    *,
    poll_seconds: float,
    stopping: asyncio.Event | None = None,
    linger_seconds: float = LINGER_SECONDS,
    waited: timedelta = timedelta(0),
) -> None:
    """Runs until cancelled, woken by the delivery worker or every `poll_seconds`; a failed
    pass is logged and the next one retries. `waited`: it takes only incidents waiting at
    least this long (where delivery jobs triage what they open, it is their backstop)."""
    wake = asyncio.Event()
    services.triage.on_nudge(wake.set)
    while not stopped(stopping):
        try:
            while not stopped(stopping):
                settled = await services.triage.run_pending(waited=waited)
                if settled == 0:
                    break  # drained: sleep until woken or the next poll
                if settled < services.triage.batch_size:
                    await pause(linger_seconds, stopping=stopping)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the next pass retries
            log.warning("triage_worker_pass_failed", error_type=type(exc).__name__)
        await pause(poll_seconds, stopping=stopping, wake=wake)
        await pause(linger_seconds, stopping=stopping)  # let a woken pass gather its batch
