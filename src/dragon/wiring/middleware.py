"""Part of app.py's wiring: the middleware stack around the routes, inner to outer."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from dragon.api.deadline import DeadlineMiddleware
from dragon.api.idempotency import IdempotencyMiddleware
from dragon.api.middleware import (
    AllowlistCORSMiddleware,
    BodyLimitMiddleware,
    CompressionMiddleware,
    RequestContextMiddleware,
)
from dragon.api.routes import webhooks
from dragon.api.tracing import TracingMiddleware, tracer_provider
from dragon.domain.ports import IdempotencyStore
from dragon.settings import Settings, origin_list


def install_middleware(
    app: FastAPI, settings: Settings, *, idempotency: IdempotencyStore
) -> list[Callable[[], object]]:
    """Adds the stack (each call wraps the ones before); returns what to close at shut-down."""
    closers: list[Callable[[], object]] = []
    app.add_middleware(
        IdempotencyMiddleware,
        store=idempotency,
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
        closers.append(provider.shutdown)
        app.add_middleware(TracingMiddleware, tracer=provider.get_tracer("dragon"))
    return closers
