"""Delivery processing on procrastinate, the PostgreSQL job engine (docs/decisions/0011).

The inbox stays the source of truth. A batch the inbox stores is deferred as a
`process_deliveries` job in the same transaction (store.inbox.JobQueue), or left to the job
already waiting (one waits at a time, docs/decisions/0022), so a committed delivery always has
a job that will see it and a rolled-back one never does. A job only names delivery ids;
the processor claims those still pending (SKIP LOCKED) and settles them idempotently, so a job
run twice, or after another worker got there first, changes nothing. A periodic sweep covers
what a job cannot: retries that came due, and deliveries whose job was lost or whose worker
died mid-batch (their transaction rolled back, so they are pending again); it also closes the
stalled jobs of dead workers.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import structlog
from procrastinate import App, PsycopgConnector
from procrastinate.jobs import Status
from sqlalchemy.engine import make_url

from dragon.services.container import Services
from dragon.services.processing import Settled
from dragon.store.inbox import JobQueue

log = structlog.get_logger("dragon.worker")
QUEUE = "deliveries"
PROCESS_TASK = "dragon.process_deliveries"
SWEEP_TASK = "dragon.sweep_deliveries"
DELIVERY_JOBS = JobQueue(queue=QUEUE, task=PROCESS_TASK)
SWEEP_BATCH = 200
JOB_BATCH = 100
# How long one job keeps passing over the inbox while deliveries keep coming; then it ends
# and the job waiting behind it (if any batch was stored meanwhile) goes on.
DRAIN_AT_MOST_SECONDS = 5.0
# Between passes that were not full: short beside the end-to-end budget of a second.
JOB_LINGER_SECONDS = 0.05
SWEEP_OVERDUE = timedelta(seconds=10)
# Acceptance first when the worker shares a server process (see workers.deliveries).
LULL_SECONDS = 0.25
YIELD_AT_MOST_SECONDS = 5.0
# After the worker stopped (its database went away): first wait, and the longest.
RESTART_BACKOFF_SECONDS = 0.5
RESTART_BACKOFF_AT_MOST_SECONDS = 10.0


@dataclass
class _Drain:
    """One pass over the due deliveries at a time per process: the jobs that arrive while it
    runs (one per stored batch, many a second under load) leave their deliveries to it
    instead of each paying a transaction to find them settled."""

    busy: bool = False
    again: bool = False


def conninfo(database_url: str) -> str:
    """procrastinate's psycopg connection string for Dragon's SQLAlchemy URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def settle_and_triage(services: Services, *, triage_inline: bool) -> Settled:
    """One pass of a delivery job: whatever is due, up to JOB_BATCH deliveries, then, with
    `triage_inline`, the triage of the incidents it opened (claimed in the pass's own
    transaction, docs/decisions/0025); otherwise the triage worker is woken for them."""
    claim = services.triage.opening_claim() if triage_inline else None
    settled = await services.processor.settle_due(batch=JOB_BATCH, triage=claim)
    if not settled.count:
        return settled
    if claim is None or not settled.incident_ids:
        # No inline triage, or a batch that fell back to one delivery at a time (what it
        # opened waits unclaimed): the triage worker's turn.
        services.triage.nudge()
        return settled
    if not settled.opened:
        return settled  # signals of incidents opened before: triaged when they opened
    try:
        # As one batch: a pass's incidents are a few milliseconds of analysis each.
        await services.triage.run_opened(
            [(o.incident, o.signals) for o in settled.opened], claim=claim, batch=JOB_BATCH
        )
    except Exception as exc:  # noqa: BLE001 - their leases run out, then the backstop
        log.warning("delivery_job_triage_failed", error_type=type(exc).__name__)
    return settled


def job_app(
    services: Services, *, database_url: str, pool_size: int = 4, triage: bool = True
) -> App:
    """The procrastinate app whose tasks run Dragon's delivery processing (and, with
    `triage`, the triage of what it opened when that is cheap)."""
    app = App(
        connector=PsycopgConnector(
            conninfo=conninfo(database_url), min_size=1, max_size=max(2, pool_size)
        )
    )

    drain = _Drain()
    # Triage of the incidents a pass opened runs right after it, in the same job, when it
    # is CPU work alone: no polling, and no claim transaction (the pass claims what it opens
    # in its own, and hands over the incidents and signals it holds, docs/decisions/0025);
    # the next pass gathers what arrived meanwhile. An analyzer or log source that calls out
    # would hold processing up, so then the triage worker does it, woken at once.
    triage_inline = triage and not services.triage.calls_out

    # Not retried by procrastinate: one job waits at a time (its queueing lock, see
    # store.inbox.JobQueue), so a retry could collide with the next one; what a failed job
    # left pending is taken by the next job or, once overdue, by the sweep.
    @app.task(name=PROCESS_TASK, queue=QUEUE)
    async def process_deliveries(delivery_ids: list[str]) -> None:
        await services.ingest.lull(quiet=LULL_SECONDS, longest=YIELD_AT_MOST_SECONDS)
        # Deliveries committed with this job's insert, or left to it while it waited, are
        # all visible once the transactions still leaving theirs to it have ended.
        await services.processor.await_scheduled()
        if drain.busy:
            # This process is draining already: it passes once more before it stops, and
            # that pass takes these deliveries (they were committed with this job).
            drain.again = True
            log.debug("delivery_job_joined_drain", deliveries=len(delivery_ids))
            return
        drain.busy = True
        settled = 0
        started = time.monotonic()
        try:
            # Whatever is due, its own deliveries among them, in batches as large as the
            # backlog (up to JOB_BATCH), pass after pass while deliveries keep coming (up
            # to DRAIN_AT_MOST_SECONDS): the batches stored meanwhile are left to the job
            # waiting behind this one, so one job's fixed costs (procrastinate's fetch and
            # finish, the wait above) serve many passes, and a pass's (its transaction,
            # the audit chain's head) many deliveries.
            while True:
                drain.again = False
                done = await settle_and_triage(services, triage_inline=triage_inline)
                settled += done.count
                if drain.again or done.count == JOB_BATCH:
                    continue
                if not done.count or time.monotonic() - started > DRAIN_AT_MOST_SECONDS:
                    break
                # A pass that was not full: let the next gather a few more (at 100/s a
                # pass right after another would take one or two, at a pass's full cost).
                await asyncio.sleep(JOB_LINGER_SECONDS)
                # Acceptance first where the job shares a server process, as at its start.
                await services.ingest.lull(quiet=LULL_SECONDS, longest=YIELD_AT_MOST_SECONDS)
        finally:
            drain.busy = False
        # Its own that were not due yet, or held by a worker that rolled back meanwhile.
        if own := await services.processor.run_batch(delivery_ids):
            settled += own
            services.triage.nudge()
        log.debug("delivery_job_done", deliveries=len(delivery_ids), settled=settled)

    # Ahead of the delivery jobs (a backlog of them must not delay it), but only for what is
    # overdue: a delivery whose job is merely waiting its turn is left to that job.
    # croniter reads a sixth field as seconds: every five seconds.
    @app.periodic(cron="* * * * * */5", periodic_id="deliveries")
    @app.task(name=SWEEP_TASK, queue=QUEUE, queueing_lock=SWEEP_TASK, priority=10)
    async def sweep_deliveries(timestamp: int) -> None:
        await services.ingest.lull(quiet=LULL_SECONDS, longest=YIELD_AT_MOST_SECONDS)
        while await services.processor.run_due(batch=SWEEP_BATCH, overdue=SWEEP_OVERDUE) > 0:
            services.triage.nudge()
        # A stalled job is closed, not retried: the passes above took (or, not due yet,
        # will take) what it left pending, and a retried job could collide with the one
        # waiting under the same queueing lock.
        for job in await app.job_manager.get_stalled_jobs(queue=QUEUE):
            log.warning("delivery_job_stalled", job_id=job.id, task=job.task_name)
            await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)

    return app


async def run_job_worker(
    app: App,
    *,
    concurrency: int,
    backoff_seconds: float = RESTART_BACKOFF_SECONDS,
    backoff_at_most_seconds: float = RESTART_BACKOFF_AT_MOST_SECONDS,
) -> None:
    """Run procrastinate's worker on the deliveries queue until cancelled; a job in progress
    finishes or is rolled back (and its deliveries swept later), so nothing is lost.

    procrastinate's worker stops for good when its database connections break (a restarted
    PostgreSQL: its listener or heartbeat fails, or fetching a job raises), so it is started
    again, with its connection pool opened afresh, after a backoff that doubles while the
    database stays unreachable. Its periodic sweep then catches up with whatever came due
    meanwhile, and the jobs of the stopped worker are handed back as stalled."""
    delay = backoff_seconds
    while True:
        started = time.monotonic()
        try:
            async with app.open_async():
                await app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=concurrency,
                    install_signal_handlers=False,
                    delete_jobs="successful",
                    shutdown_graceful_timeout=10,
                )
            reason = "stopped"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: start again after the backoff
            reason = type(exc).__name__
        if time.monotonic() - started > backoff_at_most_seconds:
            delay = backoff_seconds  # it ran a while: this is a new outage, not the same one
        log.warning("job_worker_restarting", reason=reason, after_seconds=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, backoff_at_most_seconds)
