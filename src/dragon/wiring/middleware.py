"""Part of app.py's wiring: the middleware stack around the routes, inner to outer."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dragon.api.deadline import DeadlineMiddleware
from dragon.api.idempotency import IdempotencyMiddleware
from dragon.api.middleware import (
    AllowlistCORSMiddleware,
    BodyLimitMiddleware,
    CompressionMiddleware,
    RequestContextMiddleware,
)
from dragon.api.rate_limits import RateLimiter
from dragon.api.routes import webhooks
from dragon.api.startup_gate import StartupGate
from dragon.api.tracing import TracingMiddleware
from dragon.domain.ports import IdempotencyStore
from dragon.services.ingest import IngestService
from dragon.settings import Settings, origin_list
from dragon.web.console import console_problem_pages
from dragon.wiring.tracing import stop_tracing


def install_middleware(
    app: FastAPI,
    settings: Settings,
    *,
    idempotency: IdempotencyStore,
    ingest: IngestService,
    rate_limiter: RateLimiter,
    provider: TracerProvider | None = None,
    fixed_paths: frozenset[str] = frozenset(),
) -> list[Callable[[], object]]:
    """Adds the stack (each call wraps the ones before); returns what to close at shut-down."""
    closers: list[Callable[[], object]] = []
    app.add_middleware(
        IdempotencyMiddleware,
        store=idempotency,
        ttl_seconds=settings.idempotency_ttl_seconds,
        lease_seconds=settings.request_timeout_seconds + 5,
    )
    app.add_middleware(DeadlineMiddleware, seconds=settings.request_timeout_seconds)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        webhook_max_body_bytes=settings.webhook_max_body_bytes,
    )

    def is_ready() -> bool:
        return bool(getattr(app.state, "ready", False))

    app.add_middleware(StartupGate, is_ready=is_ready)
    console_problem_pages(app)  # around the deadline, body limit and gate, inside the headers
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
    # Outside the rest: plain webhook deliveries skip the stack, which costs more per delivery
    # than storing it; the fast path does what the stack would for them (and passes the rest
    # on). Tracing and trusted proxies' headers still come first.
    app.add_middleware(
        webhooks.WebhookFastPath,
        ingest=ingest,
        sources=ingest.sources,
        routes=webhooks.router.routes,
        max_body_bytes=settings.webhook_max_body_bytes,
        is_ready=is_ready,
        deadline_seconds=settings.request_timeout_seconds,
        limiter=rate_limiter if "webhooks" in settings.rate_limit_items() else None,
    )
    if provider is not None:
        # Outermost, so the access log line of a request carries its trace id too.
        closers.append(lambda: stop_tracing(provider))
        app.add_middleware(
            TracingMiddleware, tracer=provider.get_tracer("dragon"), fixed_paths=fixed_paths
        )
    if proxies := settings.trusted_proxies():
        # Outermost, so the per-address limits, the logs, HSTS and Secure cookies see the client
        # and scheme a trusted proxy reports; anyone else's X-Forwarded-* is ignored.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return closers
