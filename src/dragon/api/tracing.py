"""OpenTelemetry tracing, off unless DRAGON_OTEL_ENDPOINT names an OTLP/HTTP collector.

One SERVER span per request, named by the route template, continuing the caller's W3C
`traceparent` when it sends one; its trace id is bound into every log line of the request
(`trace_id`), so a trace and its logs find each other. Spans are batched and exported in the
background; nothing is added to a request when tracing is off (the middleware is not installed).
"""

from __future__ import annotations

import structlog
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def tracer_provider(*, endpoint: str, service_name: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=5)))
    return provider


class TracingMiddleware:
    def __init__(
        self, app: ASGIApp, *, tracer: Tracer, fixed_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.tracer = tracer
        # Paths answered before routing (the webhook fast path): each names its own span.
        self.fixed_paths = fixed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"]
        with self.tracer.start_as_current_span(
            method, context=extract(carrier), kind=SpanKind.SERVER
        ) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            with structlog.contextvars.bound_contextvars(trace_id=trace_id):
                try:
                    await self.app(scope, receive, tracking_send)
                finally:
                    route = getattr(scope.get("route"), "path", None)
                    if route is None and scope["path"] in self.fixed_paths:
                        route = scope["path"]
                    if route:
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    span.set_attribute("http.request.method", method)
                    span.set_attribute("url.path", scope["path"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
