"""The triage worker: proposes a decision for every incident that has none yet, apart from
ingestion (its own transactions, after the incident is committed)."""

from __future__ import annotations

import asyncio

import structlog

from dragon.services.container import Services

log = structlog.get_logger("dragon.worker")


async def run_triage_worker(services: Services, *, poll_seconds: float) -> None:
    """Runs until cancelled; a failed pass is logged and the next one retries."""
    while True:
        try:
            while await services.triage.run_pending() > 0:
                pass  # drain what is waiting before sleeping
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the next pass retries
            log.warning("triage_worker_pass_failed", error_type=type(exc).__name__)
        await asyncio.sleep(poll_seconds)
