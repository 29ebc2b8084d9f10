"""The embedded worker's periodic jobs: expiring pending decisions past their deadline."""

from __future__ import annotations

import asyncio

import structlog

from dragon.services.container import Services

log = structlog.get_logger("dragon.worker")


async def run_expiry_sweeps(services: Services, *, every_seconds: float) -> None:
    """Runs until cancelled; a failed sweep is logged and tried again next time."""
    while True:
        try:
            expired = await services.decisions.expire_overdue()
            if expired:
                log.info("decisions_expired", count=expired)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep sweeping; the next run retries
            log.warning("expiry_sweep_failed", error_type=type(exc).__name__, error=str(exc))
        await asyncio.sleep(every_seconds)
