"""`dragon worker`: deliveries, triage, actions, notifications and expiry sweeps without
serving HTTP, beside any number of API replicas and other workers."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal

import typer
from rich.markup import escape

from dragon.cli.context import CLI_CALLER, err, load_settings
from dragon.domain.clock import system_clock
from dragon.store.database import connect
from dragon.wiring.ingest import delivery_worker, triage_backstop
from dragon.wiring.lifecycle import wait_for_store
from dragon.wiring.services import build_services
from dragon.wiring.shared_state import shared_state
from dragon.wiring.tracing import start_tracing, stop_tracing
from dragon.workers.notifications import run_notification_worker
from dragon.workers.runs import run_action_worker
from dragon.workers.stopping import drain
from dragon.workers.sweeper import run_expiry_sweeps
from dragon.workers.triage import run_triage_worker

# Allocations (less deallocations) between two collections of the young generation.
YOUNG_COLLECTION_THRESHOLD = 20_000


def worker() -> None:
    """Process deliveries, triage new incidents and expire overdue decisions, without serving
    HTTP. Run any number beside `dragon serve` with DRAGON_WORKER_ENABLED=false; they share the
    work through the store (claims skip rows another worker holds)."""
    settings = load_settings()
    if settings.worker_nice:
        # Only relative to other processes on the same host (and cgroup): on a host of its
        # own a worker runs as fast as before.
        os.nice(settings.worker_nice)

    async def run() -> None:
        provider = start_tracing(settings)
        database = connect(settings.database_url, pool_size=settings.db_pool_size)
        services = build_services(settings, database, clock=system_clock)
        # Events a worker publishes reach the consoles on every replica through Redis.
        shared = shared_state(settings, services, role="worker")
        if shared.live is not None:
            services = dataclasses.replace(services, live=shared.live)
        checks = await wait_for_store(services, timeout_seconds=settings.startup_timeout_seconds)
        if any(state != "ok" for state in checks.values()):
            await database.dispose()
            failing = ", ".join(f"{name}: {state}" for name, state in checks.items())
            err.print(
                f"[red]dragon worker gave up starting after "
                f"{settings.startup_timeout_seconds:g} s[/red] ({escape(failing)}); check "
                "DRAGON_DATABASE_URL and that the store is up, then run `dragon migrate`"
            )
            raise typer.Exit(4)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # Decisions (triage's in this worker, too) name the active policy: it must be stored,
        # as `dragon serve` does, before any run is claimed, or runs are refused as unknown.
        await services.policies.ensure_stored(CLI_CALLER)
        stopping = asyncio.Event()
        # What start-up built (modules, mappers, the services) lives as long as the process:
        # kept out of the collector's full passes, which walked all of it again and again.
        # A pass allocates many short-lived objects (ORM rows, dicts): at the default
        # threshold of 700 the young generation was collected many times a pass, and the
        # collector took about a tenth of a busy worker's CPU.
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
        # The loops that hold leases or call out finish the work in hand on SIGTERM.
        cooperative = [
            asyncio.create_task(
                run_action_worker(
                    services, poll_seconds=settings.worker_poll_seconds, stopping=stopping
                )
            ),
            asyncio.create_task(
                run_notification_worker(
                    services, poll_seconds=settings.notification_poll_seconds, stopping=stopping
                )
            ),
        ]
        if settings.triage_enabled:
            cooperative.append(
                asyncio.create_task(
                    run_triage_worker(
                        services,
                        poll_seconds=settings.triage_poll_seconds,
                        stopping=stopping,
                        waited=triage_backstop(settings, services),
                    )
                )
            )
        tasks = [
            asyncio.create_task(delivery_worker(settings, services)),
            asyncio.create_task(
                run_expiry_sweeps(services, every_seconds=settings.expiry_sweep_seconds)
            ),
            *cooperative,
        ]
        if shared.board is not None:
            # Workers serve no HTTP: the API replicas show their breakers from this board.
            tasks.append(asyncio.create_task(shared.board.run(services.breakers.states)))
        await services.actions.record_setting(CLI_CALLER)
        engine = "procrastinate" if settings.uses_procrastinate() else "the inbox"
        err.print(f"dragon worker started on {database.dialect}, jobs on {engine}")
        await stop.wait()
        # Running actions, triage and sends finish (their leases released) up to the deadline;
        # any other pass in progress finishes its transaction or rolls back: nothing is lost.
        busy = await drain(
            cooperative, stopping=stopping, seconds=settings.shutdown_timeout_seconds
        )
        if busy:
            err.print(f"dragon worker: {busy} loop(s) still busy at the shutdown deadline")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await services.ingest.close()
        await services.triage.close()
        await services.runs.close()
        await services.notifications.close()
        await database.dispose()
        if shared.redis is not None:
            await shared.redis.close()
        if provider is not None:
            await asyncio.to_thread(stop_tracing, provider)

    asyncio.run(run())
