"""Builds the ASGI app: settings in, store and services wired, routes and middleware on."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import structlog
from fastapi import Depends, FastAPI

from dragon.api.access import check_table_covers, enforce_access
from dragon.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from dragon.api.problems import install_error_handlers
from dragon.api.routes import audit, decisions, health, incidents, keys, policy
from dragon.domain.clock import Clock, system_clock
from dragon.domain.errors import DragonError
from dragon.services.auth import IssuedKey, JwtSettings
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Profile, Settings
from dragon.store.database import Database, connect
from dragon.store.health import SqlStoreHealth
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from dragon.workers.sweeper import run_expiry_sweeps

log = structlog.get_logger("dragon")


class ConfigurationError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def check_secrets(settings: Settings) -> None:
    problems = settings.secret_problems()
    if problems and settings.profile is Profile.PROD:
        raise ConfigurationError(problems)
    for problem in problems:
        log.warning("weak_secret", problem=problem, profile=settings.profile.value)


def build_services(settings: Settings, database: Database, *, clock: Clock) -> Services:
    jwt_key = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    return Services.build(
        SqlUnitOfWorkFactory(database),
        health=SqlStoreHealth(database),
        clock=clock,
        jwt=JwtSettings(
            algorithm=settings.jwt_algorithm,
            key=jwt_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        ),
    )


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


def create_app(settings: Settings, *, clock: Clock = system_clock) -> FastAPI:
    check_secrets(settings)
    database = connect(
        settings.database_url, pool_size=settings.db_pool_size, echo=settings.db_echo
    )
    services = build_services(settings, database, clock=clock)

    async def initialise() -> bool:
        """First-start work that needs a migrated store; False (and logged) until it has one."""
        checks = await services.health.check()
        if any(state != "ok" for state in checks.values()):
            log.error("store_not_ready", checks=checks, hint="run `dragon migrate`")
            return False
        if settings.bootstrap_admin:
            issued = await services.auth.bootstrap_admin()
            if issued:
                announce_admin_key(issued, settings)
        await services.policies.ensure_stored(SYSTEM_CALLER)
        return True

    async def initialise_safely() -> bool:
        try:
            return await initialise()
        except DragonError as exc:
            log.error("initialisation_failed", code=exc.code, error=exc.message)
            return False

    def mark_ready(app: FastAPI) -> None:
        app.state.ready = True
        log.info("dragon_ready", database=database.dialect, profile=settings.profile.value)

    async def retry_initialisation(app: FastAPI) -> None:
        delay = 1.0
        while not await initialise_safely():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        mark_ready(app)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = [
            asyncio.create_task(
                run_expiry_sweeps(services, every_seconds=settings.expiry_sweep_seconds)
            )
        ]
        # A healthy start is ready before the first request. Otherwise probes are served at
        # once, /readyz answers 503 naming the failing check, and initialisation retries.
        if await initialise_safely():
            mark_ready(app)
        else:
            background.append(asyncio.create_task(retry_initialisation(app)))
        try:
            yield
        finally:
            app.state.ready = False
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await database.dispose()

    app = FastAPI(
        title="Dragon",
        summary="Governed DevOps incident orchestrator",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(enforce_access)],
    )
    app.state.services = services
    app.state.database = database
    app.state.ready = False
    for router in (
        health.router,
        keys.router,
        incidents.router,
        decisions.router,
        policy.router,
        audit.router,
    ):
        app.include_router(router)
    check_table_covers(app.routes)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
