"""Spans for the pipeline behind a webhook, so one trace runs from the accepting request through
the worker's processing, triage and run execution to the integrations' outbound HTTP calls.

The W3C `traceparent` of the step that made a piece of work travels with it in the store (a
delivery's kept headers, an incident's and a decision's `trace_context`), so the process that
picks the work up, maybe minutes later on another host, continues the same trace. Every span
binds its trace id into the log lines written inside it (`trace_id`).

Tracing is off unless `enable()` was called at start-up (DRAGON_OTEL_ENDPOINT is set); then
`span()` is a bare `yield`, `current_traceparent()` returns None and `traced()` hands the
transport back unwrapped, so a process that does not trace pays nothing for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import httpx
import structlog
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

CONSUMER = SpanKind.CONSUMER


class _State:
    tracer: Tracer | None = None


_state = _State()


def enable(tracer: Tracer) -> None:
    _state.tracer = tracer


def disable() -> None:
    _state.tracer = None


def current_traceparent() -> str | None:
    """The current span's W3C traceparent, to store beside the work it leads to."""
    if _state.tracer is None:
        return None
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[None]:
    """A span for one step of the pipeline, the child of `parent` (a stored traceparent) when
    given, else of the current span; its trace id goes into the logs written inside it."""
    tracer = _state.tracer
    if tracer is None:
        yield
        return
    context = extract({"traceparent": parent}) if parent else None
    with tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=dict(attributes or {})
    ) as current:
        trace_id = format(current.get_span_context().trace_id, "032x")
        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            yield


class TracedTransport(httpx.AsyncBaseTransport):
    """A CLIENT span around each outbound request, with `traceparent` sent along. The span
    names the method and host only: paths and queries can carry secrets (a Teams webhook's
    path, an API token), and exception texts are not recorded for the same reason."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, tracer: Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        with self._tracer.start_as_current_span(
            f"{request.method} {host}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "server.address": host,
                "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            carrier: dict[str, str] = {}
            inject(carrier)
            request.headers.update(carrier)
            try:
                response = await self._inner.handle_async_request(request)
            except BaseException as exc:
                current.set_attribute("error.type", type(exc).__name__)
                current.set_status(Status(StatusCode.ERROR))
                raise
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                current.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def traced(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncBaseTransport | None:
    """The transport for an integration's client: wrapped in CLIENT spans when tracing is on,
    else `transport` itself (None: httpx's default), untouched."""
    tracer = _state.tracer
    if tracer is None:
        return transport
    return TracedTransport(transport or httpx.AsyncHTTPTransport(), tracer=tracer)
