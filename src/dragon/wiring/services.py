"""Part of app.py's wiring: the services container over one database and the integrations."""

from __future__ import annotations

from dragon.domain.breaker import BreakerRegistry
from dragon.domain.clock import Clock
from dragon.execution_wiring import execution_wiring
from dragon.services.auth import JwtSettings
from dragon.services.container import Services
from dragon.settings import Settings
from dragon.store.database import Database
from dragon.store.health import SqlStoreHealth
from dragon.store.inbox import GroupCommitInbox
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from dragon.wiring.ingest import inbox_settings
from dragon.wiring.notifications import notify_settings
from dragon.wiring.triage import job_log_source, llm_analyzer, triage_settings
from dragon.workers.jobs import DELIVERY_JOBS


def build_services(settings: Settings, database: Database, *, clock: Clock) -> Services:
    jwt_key = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    breakers = BreakerRegistry(clock=clock)
    analyzer = llm_analyzer(settings, breakers)
    logs, log_clients = job_log_source(settings, breakers)
    closers = [c.aclose for c in log_clients] + ([analyzer.close] if analyzer else [])
    return Services.build(
        SqlUnitOfWorkFactory(
            database, jobs=DELIVERY_JOBS if settings.uses_procrastinate() else None
        ),
        breakers=breakers,
        analyzer=analyzer,
        job_logs=logs,
        closers=closers,
        execution=execution_wiring(settings, clock=clock, breakers=breakers),
        health=SqlStoreHealth(database),
        clock=clock,
        inbox=inbox_settings(settings),
        delivery_inbox=GroupCommitInbox(
            database, jobs=DELIVERY_JOBS if settings.uses_procrastinate() else None
        ),
        triage=triage_settings(settings),
        jwt=JwtSettings(
            algorithm=settings.jwt_algorithm,
            key=jwt_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        ),
        notify=notify_settings(settings, clock=clock),
    )
