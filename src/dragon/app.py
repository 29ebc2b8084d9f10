"""Builds the ASGI app: settings in, store and services wired, routes and middleware on.

The wiring itself lives by capability in dragon.wiring (and dragon.execution_wiring)."""

from __future__ import annotations

import dataclasses

import structlog
from fastapi import Depends, FastAPI

from dragon.api.access import enforce_access
from dragon.api.readiness import Readiness
from dragon.domain.clock import Clock, system_clock
from dragon.settings import Profile, Settings
from dragon.store.database import connect
from dragon.store.operational_stats import SqlOperationalStats
from dragon.wiring.lifecycle import Lifecycle
from dragon.wiring.middleware import install_middleware
from dragon.wiring.routes import install_routes
from dragon.wiring.services import build_services
from dragon.wiring.shared_state import shared_state
from dragon.wiring.tracing import start_tracing

# The tests build services and check secrets the way the app does.
__all__ = ["ConfigurationError", "build_services", "check_secrets", "create_app"]

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
    for name, value in (
        ("DRAGON_GITHUB_WEBHOOK_SECRET", settings.github_webhook_secret),
        ("DRAGON_GITLAB_WEBHOOK_TOKEN", settings.gitlab_webhook_token),
        ("DRAGON_JENKINS_WEBHOOK_SECRET", settings.jenkins_webhook_secret),
        ("DRAGON_ALERTMANAGER_TOKEN", settings.alertmanager_token),
    ):
        if value is None:
            log.warning("webhook_receiver_disabled", setting=name, hint="set it to receive")


def create_app(settings: Settings, *, clock: Clock = system_clock) -> FastAPI:
    check_secrets(settings)
    provider = start_tracing(settings)
    database = connect(
        settings.database_url,
        pool_size=settings.db_pool_size,
        echo=settings.db_echo,
        pool_timeout=settings.db_pool_timeout_seconds,
        slow_query_ms=settings.slow_query_ms,
    )
    services = build_services(settings, database, clock=clock)
    shared = shared_state(settings, services)
    if shared.live is not None:
        services = dataclasses.replace(services, live=shared.live)
    lifecycle = Lifecycle(
        settings, services, database, redis=shared.redis, live=shared.live, board=shared.board
    )
    app = FastAPI(
        title="Dragon",
        summary="Governed DevOps incident orchestrator",
        version="0.1.0",
        lifespan=lifecycle.lifespan,
        dependencies=[Depends(enforce_access)],
        # Dragon traces with its own middleware (DRAGON_OTEL_ENDPOINT) and exports its own
        # metrics; FastAPI's built-in telemetry would look up OpenTelemetry's global
        # providers (environment reads included) on every request to find them unset.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.database = database
    app.state.ready = False
    app.state.rate_limiter = shared.rate_limiter
    app.state.readiness = Readiness(
        services.health,
        redis=shared.redis,
        cache_seconds=settings.readiness_cache_seconds,
        board=shared.board,
    )
    install_routes(app, settings, services=services, shared=shared, clock=clock)
    app.state.clock = clock
    app.state.operational_stats = SqlOperationalStats(database)
    app.state.metrics_token = (
        settings.metrics_token.get_secret_value() if settings.metrics_token else None
    )
    app.state.breaker_states = services.breakers.states
    # After the routes' own (webhook fast path): each middleware added wraps the ones before.
    lifecycle.closers.extend(
        install_middleware(
            app,
            settings,
            idempotency=shared.idempotency,
            ingest=services.ingest,
            rate_limiter=shared.rate_limiter,
            provider=provider,
            fixed_paths=frozenset(f"/webhooks/{s}" for s in services.ingest.sources),
        )
    )
    return app
