"""Part of app.py's wiring: one process's start-up and shut-down, and its background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import structlog

from dragon.domain.errors import DragonError
from dragon.services.auth import IssuedKey
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Settings
from dragon.store.breaker_board import RedisBreakerBoard
from dragon.store.database import Database
from dragon.store.live_redis import RedisLiveUpdates
from dragon.store.redis_client import RedisGuard
from dragon.wiring.ingest import delivery_worker, triage_backstop
from dragon.workers.live_feed import run_dashboard_feed
from dragon.workers.notifications import run_notification_worker
from dragon.workers.runs import run_action_worker
from dragon.workers.stopping import drain
from dragon.workers.sweeper import run_expiry_sweeps
from dragon.workers.triage import run_triage_worker

if TYPE_CHECKING:
    # Annotations only: `dragon worker` runs no ASGI app and needs no FastAPI.
    from fastapi import FastAPI

log = structlog.get_logger("dragon")


def announce_admin_key(issued: IssuedKey, settings: Settings) -> None:
    """Printed once, to the terminal only: never through the log pipeline."""
    base = f"http://{settings.host}:{settings.port}"
    print(  # noqa: T201 - this is the one message meant for a person's eyes
        "\n"
        "Dragon created the first admin API key. It is shown once; store it now.\n\n"
        f"    {issued.secret}\n\n"
        "Try it:\n"
        f"    curl -H 'Authorization: Bearer {issued.secret}' {base}/api/v1/me\n",
        file=sys.stdout,
        flush=True,
    )


async def wait_for_store(services: Services, *, timeout_seconds: float) -> dict[str, str]:
    """The store's checks once it is usable, retried with exponential backoff (1 s, 2 s ...
    30 s); the last failing checks after `timeout_seconds` (0: retry forever)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds if timeout_seconds > 0 else None
    delay = 1.0
    while True:
        checks = dict(await services.health.check())
        if all(state == "ok" for state in checks.values()):
            return checks
        log.warning("store_not_ready", checks=checks, retry_in_seconds=delay)
        if deadline is not None and loop.time() + delay > deadline:
            return checks
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)


class Lifecycle:
    """Start-up and shut-down of one process: first-start work, background tasks, readiness."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        database: Database,
        *,
        redis: RedisGuard | None = None,
        live: RedisLiveUpdates | None = None,
        board: RedisBreakerBoard | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.database = database
        self.redis = redis
        self.live = live
        self.board = board
        self.stopping = asyncio.Event()
        self.cooperative: list[asyncio.Task[None]] = []  # drained, not cut, at shut-down
        self.closers: list[Callable[[], object]] = []  # run last at shut-down

    async def initialise(self) -> bool:
        """First-start work that needs a migrated store; False (and logged) until it has one."""
        try:
            checks = await self.services.health.check()
            if any(state != "ok" for state in checks.values()):
                log.error("store_not_ready", checks=checks, hint="run `dragon migrate`")
                return False
            if self.settings.bootstrap_admin:
                issued = await self.services.auth.bootstrap_admin()
                if issued:
                    announce_admin_key(issued, self.settings)
            await self.services.policies.ensure_stored(SYSTEM_CALLER)
            await self.services.actions.record_setting(SYSTEM_CALLER)
        except DragonError as exc:
            log.error("initialisation_failed", code=exc.code, error=exc.message)
            return False
        return True

    def mark_ready(self, app: FastAPI) -> None:
        app.state.ready = True
        log.info(
            "dragon_ready", database=self.database.dialect, profile=self.settings.profile.value
        )

    async def retry_initialisation(self, app: FastAPI) -> None:
        """Exponential backoff (1 s, 2 s, 4 s ... 30 s) until initialisation succeeds, or until
        DRAGON_STARTUP_TIMEOUT_SECONDS: then a final error, and `dragon serve` exits non-zero
        (its `give_up`), so an orchestrator restarts the process or shows it failing."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.startup_timeout_seconds
        deadline = loop.time() + timeout if timeout > 0 else None
        delay = 1.0
        while not await self.initialise():
            if deadline is not None and loop.time() + delay > deadline:
                checks = await self.services.health.check()
                log.error(
                    "startup_failed",
                    seconds=timeout,
                    checks=checks,
                    hint="check DRAGON_DATABASE_URL and that the store is up; `dragon migrate`",
                )
                app.state.startup_failed = True
                give_up = getattr(app.state, "give_up", None)
                if give_up is not None:
                    give_up()
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        self.mark_ready(app)

    def background_tasks(self) -> list[asyncio.Task[None]]:
        tasks = [
            asyncio.create_task(
                run_expiry_sweeps(self.services, every_seconds=self.settings.expiry_sweep_seconds)
            ),
            asyncio.create_task(
                run_dashboard_feed(self.services, every_seconds=self.settings.live_poll_seconds)
            ),
        ]
        if self.live is not None:
            tasks.append(asyncio.create_task(self.live.listen()))
        if self.board is not None:
            tasks.append(asyncio.create_task(self.board.run(self.services.breakers.states)))
        if self.settings.worker_enabled:
            tasks.append(asyncio.create_task(delivery_worker(self.settings, self.services)))
            if self.settings.triage_enabled:
                self.cooperative.append(
                    asyncio.create_task(
                        run_triage_worker(
                            self.services,
                            poll_seconds=self.settings.triage_poll_seconds,
                            stopping=self.stopping,
                            waited=triage_backstop(self.settings, self.services),
                        )
                    )
                )
            self.cooperative.append(
                asyncio.create_task(
                    run_action_worker(
                        self.services,
                        poll_seconds=self.settings.worker_poll_seconds,
                        stopping=self.stopping,
                    )
                )
            )
            self.cooperative.append(
                asyncio.create_task(
                    run_notification_worker(
                        self.services,
                        poll_seconds=self.settings.notification_poll_seconds,
                        stopping=self.stopping,
                    )
                )
            )
            tasks.extend(self.cooperative)
        return tasks

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        background = self.background_tasks()
        # A healthy start is ready before the first request. Otherwise probes are served at
        # once, /readyz answers 503 naming the failing check, and initialisation retries.
        if await self.initialise():
            self.mark_ready(app)
        else:
            background.append(asyncio.create_task(self.retry_initialisation(app)))
        # What start-up built (modules, the app, mappers) lives as long as the process: keep
        # it out of the collector's full passes, which would otherwise walk all of it again
        # and again under load (a pause that shows as tail latency).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            app.state.ready = False
            self.services.live.close()
            # Running actions, triage and sends finish (leases released) up to the deadline.
            await drain(
                self.cooperative,
                stopping=self.stopping,
                seconds=self.settings.shutdown_timeout_seconds,
            )
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.services.ingest.close()
            await self.services.triage.close()
            await self.services.runs.close()
            await self.services.notifications.close()
            await self.database.dispose()
            if self.redis is not None:
                await self.redis.close()
            for close in self.closers:
                await asyncio.to_thread(close)  # flushes exporters: blocking I/O
