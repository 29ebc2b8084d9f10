"""Builds the ASGI app: settings in, store and services wired, routes and middleware on."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml
from fastapi import Depends, FastAPI
from pydantic import SecretStr

from dragon.api.access import check_table_covers, enforce_access
from dragon.api.deadline import DeadlineMiddleware
from dragon.api.idempotency import IdempotencyMiddleware
from dragon.api.middleware import (
    AllowlistCORSMiddleware,
    BodyLimitMiddleware,
    CompressionMiddleware,
    RequestContextMiddleware,
)
from dragon.api.problems import install_error_handlers
from dragon.api.rate_limits import RateLimiter, SharedStorage, rate_limit
from dragon.api.readiness import Readiness
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
from dragon.api.tracing import TracingMiddleware, tracer_provider
from dragon.domain.breaker import BreakerRegistry
from dragon.domain.clock import Clock, system_clock
from dragon.domain.errors import DragonError, ValidationFailed
from dragon.domain.notification_routing import RoutingTable, parse_routing
from dragon.domain.ports import IdempotencyStore, WebhookAdapter
from dragon.domain.signals import NormalizeOptions
from dragon.execution_wiring import execution_wiring
from dragon.integrations import (
    alertmanager,
    events,
    github,
    gitlab,
    jenkins,
    slack,
)
from dragon.integrations.channels import build_channels
from dragon.integrations.job_log_sources import LogSourceConfig, build_job_logs
from dragon.integrations.job_logs import JobLogs, TailLimits
from dragon.integrations.llm import LlmAnalyzer, LlmSettings
from dragon.integrations.llm import build_client as build_llm_client
from dragon.services.auth import IssuedKey, JwtSettings
from dragon.services.container import InboxSettings, NotifySettings, Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.notifications import DeliveryRules
from dragon.services.triage import TriageSettings
from dragon.settings import Profile, Settings, origin_list, runbook_map, secret_list
from dragon.store.database import Database, connect
from dragon.store.health import SqlStoreHealth
from dragon.store.idempotency import (
    FallbackIdempotencyStore,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
)
from dragon.store.inbox import GroupCommitInbox
from dragon.store.operational_stats import SqlOperationalStats
from dragon.store.redis_client import RedisGuard, connect_redis
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from dragon.web.console import install_console
from dragon.workers.deliveries import run_delivery_worker
from dragon.workers.jobs import DELIVERY_JOBS, job_app, run_job_worker
from dragon.workers.live_feed import run_dashboard_feed
from dragon.workers.notifications import run_notification_worker
from dragon.workers.runs import run_action_worker
from dragon.workers.sweeper import run_expiry_sweeps
from dragon.workers.triage import run_triage_worker

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


def inbox_settings(settings: Settings) -> InboxSettings:
    adapters: dict[str, WebhookAdapter] = {
        github.SOURCE: github,
        gitlab.SOURCE: gitlab,
        jenkins.SOURCE: jenkins,
        alertmanager.SOURCE: alertmanager,
    }
    grouping = tuple(g.strip() for g in settings.alert_grouping_labels.split(",") if g.strip())
    return InboxSettings(
        adapters=adapters,
        secrets={
            github.SOURCE: secret_list(settings.github_webhook_secret),
            gitlab.SOURCE: secret_list(settings.gitlab_webhook_token),
            jenkins.SOURCE: secret_list(settings.jenkins_webhook_secret),
            alertmanager.SOURCE: secret_list(settings.alertmanager_token),
        },
        event_normalizer=events.normalize_event,
        options=NormalizeOptions(alert_grouping_labels=grouping),
        max_attempts=settings.delivery_max_attempts,
    )


def triage_settings(settings: Settings) -> TriageSettings:
    return TriageSettings(
        runbooks=runbook_map(settings.triage_runbooks),
        change_freeze=settings.change_freeze,
        max_attempts=settings.triage_max_attempts,
    )


def llm_analyzer(settings: Settings, breakers: BreakerRegistry) -> LlmAnalyzer | None:
    if not settings.llm_base_url:
        return None
    llm = LlmSettings(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        api_key_header=settings.llm_api_key_header,
        total_timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )
    return LlmAnalyzer(
        build_llm_client(llm, connect_timeout=settings.llm_connect_timeout_seconds),
        settings=llm,
        breaker=breakers.breaker(
            "llm",
            failure_threshold=settings.llm_breaker_threshold,
            reset_seconds=settings.llm_breaker_reset_seconds,
        ),
    )


def job_log_source(
    settings: Settings, breakers: BreakerRegistry
) -> tuple[JobLogs | None, list[httpx.AsyncClient]]:
    """The vendors whose job logs triage may fetch: those with credentials configured."""

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value else None

    config = LogSourceConfig(
        limits=TailLimits(
            max_bytes=settings.triage_log_max_bytes, timeout=settings.triage_log_timeout_seconds
        ),
        github_api_url=settings.triage_github_api_url,
        github_token=secret(settings.triage_github_token),
        gitlab_url=settings.triage_gitlab_url,
        gitlab_token=secret(settings.triage_gitlab_token),
        jenkins_url=settings.triage_jenkins_url,
        jenkins_user=settings.triage_jenkins_user,
        jenkins_token=secret(settings.triage_jenkins_token),
    )
    return build_job_logs(config, breakers)


def load_routing(settings: Settings) -> RoutingTable:
    """The notification routing file, validated; no file means no channels."""
    if not settings.notifications_file:
        return RoutingTable()
    path = Path(settings.notifications_file)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationFailed(
            f"DRAGON_NOTIFICATIONS_FILE cannot be read: {type(exc).__name__}",
            code="notification_config_invalid",
        ) from None
    return parse_routing(document)


def notify_settings(settings: Settings, *, clock: Clock) -> NotifySettings:
    routing = load_routing(settings)
    http = httpx.AsyncClient(timeout=settings.notification_timeout_seconds, follow_redirects=False)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    slack_client = (
        slack.SlackClient(http, token=token, api_url=settings.slack_api_url) if token else None
    )
    signing = settings.slack_signing_secret
    secret = signing.get_secret_value() if signing else None

    def verify_chat(*, headers: Mapping[str, str], body: bytes) -> None:
        slack.verify_request(headers=headers, body=body, secret=secret, now=clock().timestamp())

    return NotifySettings(
        routing=routing,
        channels=build_channels(routing.channels, http=http, slack=slack_client),
        rules=DeliveryRules(
            max_attempts=settings.notification_max_attempts,
            remind_before=timedelta(seconds=settings.approval_remind_before_seconds),
            escalate_before=timedelta(seconds=settings.approval_escalate_before_seconds),
        ),
        directory=slack.SlackDirectory(slack_client),
        verify_chat=verify_chat,
        parse_chat=slack.parse_action,
        close=http.aclose,
    )


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


def delivery_worker(settings: Settings, services: Services) -> Coroutine[Any, Any, None]:
    """The worker loop for the configured job engine (docs/decisions/0011)."""
    if settings.uses_procrastinate():
        jobs = job_app(services, database_url=settings.database_url)
        return run_job_worker(jobs, concurrency=settings.worker_concurrency)
    return run_delivery_worker(services, poll_seconds=settings.worker_poll_seconds)


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


class Lifecycle:
    """Start-up and shut-down of one process: first-start work, background tasks, readiness."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        database: Database,
        *,
        redis: RedisGuard | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.database = database
        self.redis = redis
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
        delay = 1.0
        while not await self.initialise():
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
        if self.settings.worker_enabled:
            tasks.append(asyncio.create_task(delivery_worker(self.settings, self.services)))
            if self.settings.triage_enabled:
                tasks.append(
                    asyncio.create_task(
                        run_triage_worker(
                            self.services, poll_seconds=self.settings.triage_poll_seconds
                        )
                    )
                )
            tasks.append(
                asyncio.create_task(
                    run_action_worker(self.services, poll_seconds=self.settings.worker_poll_seconds)
                )
            )
            tasks.append(
                asyncio.create_task(
                    run_notification_worker(
                        self.services, poll_seconds=self.settings.notification_poll_seconds
                    )
                )
            )
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


@dataclass(frozen=True)
class SharedState:
    """What replicas share through Redis, or each process keeps when there is none."""

    redis: RedisGuard | None
    rate_limiter: RateLimiter
    idempotency: IdempotencyStore


def shared_state(settings: Settings, services: Services) -> SharedState:
    rates = settings.rate_limit_items()
    if settings.redis_url is None:
        return SharedState(None, RateLimiter(rates), MemoryIdempotencyStore())
    url = settings.redis_url.get_secret_value()
    timeout = settings.redis_timeout_seconds
    # One failure opens it: no request pays a dead Redis's timeout twice.
    breaker = services.breakers.breaker("redis", failure_threshold=1, reset_seconds=5.0)
    guard = RedisGuard(connect_redis(url, timeout_seconds=timeout), breaker=breaker)
    shared = SharedStorage(
        redis_url=url, key_prefix=settings.redis_key_prefix, timeout_seconds=timeout, guard=guard
    )
    idempotency = FallbackIdempotencyStore(
        RedisIdempotencyStore(guard.redis, prefix=f"{settings.redis_key_prefix}idem:"),
        fallback=MemoryIdempotencyStore(),
        guard=guard,
    )
    return SharedState(guard, RateLimiter(rates, shared=shared), idempotency)


def create_app(settings: Settings, *, clock: Clock = system_clock) -> FastAPI:
    check_secrets(settings)
    database = connect(
        settings.database_url,
        pool_size=settings.db_pool_size,
        echo=settings.db_echo,
        pool_timeout=settings.db_pool_timeout_seconds,
        slow_query_ms=settings.slow_query_ms,
    )
    services = build_services(settings, database, clock=clock)
    shared = shared_state(settings, services)
    lifecycle = Lifecycle(settings, services, database, redis=shared.redis)
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
        services.health, redis=shared.redis, cache_seconds=settings.readiness_cache_seconds
    )
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
    # Innermost, so every middleware around it (body limit, correlation, any added later)
    # also sees the webhook requests it serves.
    app.add_middleware(
        webhooks.WebhookFastPath,
        ingest=services.ingest,
        sources=services.ingest.sources,
        routes=webhooks.router.routes,
        deadline_seconds=settings.request_timeout_seconds,
        limiter=shared.rate_limiter if limited else None,
    )
    app.state.clock = clock
    app.state.operational_stats = SqlOperationalStats(database)
    app.state.metrics_token = (
        settings.metrics_token.get_secret_value() if settings.metrics_token else None
    )
    app.state.breaker_states = services.breakers.states
    app.add_middleware(
        IdempotencyMiddleware,
        store=shared.idempotency,
        ttl_seconds=settings.idempotency_ttl_seconds,
        lease_seconds=settings.request_timeout_seconds + 5,
    )
    app.add_middleware(
        DeadlineMiddleware,
        seconds=settings.request_timeout_seconds,
        bounded_within=(f"{webhooks.PREFIX}/",),  # the fast path keeps the same deadline
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        webhook_max_body_bytes=settings.webhook_max_body_bytes,
    )
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(
        CompressionMiddleware, minimum_size=1024, uncompressed=(f"{webhooks.PREFIX}/",)
    )
    origins = origin_list(settings.cors_origins)
    if origins:
        # Only listed origins get a grant, and only they may send credentials.
        app.add_middleware(
            AllowlistCORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "X-Correlation-ID",
                "Idempotency-Key",
                "X-CSRF-Token",
            ],
            expose_headers=[
                "X-Correlation-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
        )
    if settings.otel_endpoint:
        # Outermost, so the access log line of a request carries its trace id too.
        provider = tracer_provider(
            endpoint=settings.otel_endpoint, service_name=settings.otel_service_name
        )
        lifecycle.closers.append(provider.shutdown)
        app.add_middleware(TracingMiddleware, tracer=provider.get_tracer("dragon"))
    return app
