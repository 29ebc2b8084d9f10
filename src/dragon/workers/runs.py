"""The run worker: schedules runs for approved decisions, carries out due runs, and prunes old
ones. Embedded in `dragon serve` or alone in `dragon worker`; any number share the store."""

from __future__ import annotations

import asyncio

import structlog

from dragon.services.container import Services
from dragon.workers.stopping import pause, stopped

log = structlog.get_logger("dragon.worker")


async def run_pass(services: Services, *, stopping: asyncio.Event | None = None) -> int:
    """One pass: queue what became runnable, then work through everything due (what is
    claimed is finished; once `stopping` is set nothing more is claimed)."""
    await services.runs.schedule()
    done = 0
    while not stopped(stopping) and (claimed := await services.runs.run_due()) > 0:
        done += claimed
    await services.outcomes.check()
    return done


async def run_action_worker(
    services: Services,
    *,
    poll_seconds: float,
    prune_every_seconds: float = 3600.0,
    stopping: asyncio.Event | None = None,
) -> None:
    """Runs until cancelled or, after the pass in hand, `stopping` is set; a failed pass is
    logged and the next one retries."""
    loop = asyncio.get_running_loop()
    next_prune = loop.time()
    while not stopped(stopping):
        try:
            await run_pass(services, stopping=stopping)
            if loop.time() >= next_prune:
                pruned = await services.runs.prune()
                if pruned.count:
                    log.info("runs_pruned", count=pruned.count)
                next_prune = loop.time() + prune_every_seconds
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the next pass retries
            log.warning("run_worker_pass_failed", error_type=type(exc).__name__)
        await pause(poll_seconds, stopping=stopping)
