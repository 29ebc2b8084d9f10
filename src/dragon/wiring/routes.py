"""Part of app.py's wiring: the API routers, the webhook receivers and the web console."""

from __future__ import annotations

import secrets
from datetime import timedelta

import structlog
from fastapi import Depends, FastAPI

from dragon.api.access import check_table_covers
from dragon.api.problems import install_error_handlers
from dragon.api.rate_limits import rate_limit
from dragon.api.routes import (
    audit,
    dashboard,
    decisions,
    deliveries,
    health,
    incidents,
    keys,
    legacy_actions,
    metrics,
    notifications,
    playground,
    policy,
    runbooks,
    runs,
    slack_actions,
    triage,
    webhooks,
)
from dragon.api.routes import (
    events as event_routes,
)
from dragon.api.sessions import SessionCodec
from dragon.domain.clock import Clock
from dragon.services.container import Services
from dragon.settings import Settings
from dragon.web.console import install_console
from dragon.wiring.shared_state import SharedState

log = structlog.get_logger("dragon")


def session_codec(settings: Settings, *, clock: Clock) -> SessionCodec:
    if settings.secret_key is not None:
        secret = settings.secret_key.get_secret_value().encode()
    else:
        # check_secrets refused this in prod; in dev, sessions last as long as the process.
        secret = secrets.token_bytes(32)
        log.warning(
            "console_secret_generated",
            hint="set DRAGON_SECRET_KEY so console sessions survive a restart",
        )
    return SessionCodec(
        secret,
        clock=clock,
        idle=timedelta(minutes=settings.session_idle_minutes),
        max_age=timedelta(hours=settings.session_max_hours),
    )


def install_routes(
    app: FastAPI, settings: Settings, *, services: Services, shared: SharedState, clock: Clock
) -> None:
    """Every route and the error handlers; the webhook fast path is in wiring.middleware."""
    for router in (
        health.router,
        keys.router,
        incidents.router,
        decisions.router,
        policy.router,
        audit.router,
        event_routes.router,
        deliveries.router,
        metrics.router,
        dashboard.router,
        playground.router,
        triage.router,
        runs.router,
        runbooks.router,
        legacy_actions.router,
        notifications.router,
        slack_actions.router,
    ):
        app.include_router(router)
    # Opt-in: a per-address limit costs every delivery a round trip to the limit's storage.
    limited = "webhooks" in settings.rate_limit_items()
    app.include_router(
        webhooks.router,
        dependencies=[Depends(rate_limit("webhooks", by="address"))] if limited else None,
    )
    install_error_handlers(app)
    install_console(app, codec=session_codec(settings, clock=clock))
    check_table_covers(app.routes)
