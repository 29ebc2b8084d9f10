"""Part of app.py's wiring: OpenTelemetry for one process (API replica or worker), on when
DRAGON_OTEL_ENDPOINT is set."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from dragon import traces
from dragon.api.tracing import tracer_provider
from dragon.settings import Settings


def start_tracing(settings: Settings) -> TracerProvider | None:
    """Before anything builds an HTTP client, so the integrations' clients get traced
    transports and the pipeline's spans a tracer."""
    if not settings.otel_endpoint:
        return None
    provider = tracer_provider(
        endpoint=settings.otel_endpoint, service_name=settings.otel_service_name
    )
    traces.enable(provider.get_tracer("dragon"))
    return provider


def stop_tracing(provider: TracerProvider) -> None:
    traces.disable()
    provider.shutdown()  # flushes the batch: blocking I/O
