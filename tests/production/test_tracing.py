"""OpenTelemetry tracing: off by default; when DRAGON_OTEL_ENDPOINT is set, each request is a
SERVER span named by its route template, continuing the caller's traceparent, exported over
OTLP/HTTP to a real receiver on loopback, and its trace id is in the request's log lines."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi import FastAPI

from dragon.api.tracing import TracingMiddleware
from tests.conftest import Keys
from tests.production.conftest import AppFactory
from tests.support.otlp_receiver import TRACE_ID, TRACEPARENT, Collector, collector

__all__ = ["collector"]  # the receiver fixture


def spans_of(collector: Collector) -> list[tuple[str, str, dict[str, object], str]]:
    spans = []
    for request in collector.requests:
        for resource in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {
                        a.key: a.value.string_value or a.value.int_value for a in span.attributes
                    }
                    spans.append((span.name, span.trace_id.hex(), attributes, service))
    return spans


def has_tracing(app: FastAPI) -> bool:
    return any(m.cls is TracingMiddleware for m in app.user_middleware)


async def test_tracing_is_off_by_default(app: FastAPI) -> None:
    assert not has_tracing(app)


async def test_a_request_is_exported_as_a_span_with_its_trace_id_in_the_logs(
    make_app: AppFactory,
    keys: Keys,
    collector: tuple[Collector, str],
    json_logs: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    found, endpoint = collector
    async with make_app(otel_endpoint=endpoint, otel_service_name="dragon-test") as (app, http):
        assert has_tracing(app)
        json_logs()
        made = await http.post(
            "/api/v1/incidents",
            json={"title": "traced"},
            headers={**keys.of("developer"), "traceparent": TRACEPARENT},
        )
        incident_id = made.json()["id"]
        await http.get(f"/api/v1/incidents/{incident_id}", headers=keys.of("viewer"))
        logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    # Leaving the app shut its tracer provider down, which flushes the batch.
    assert found.received.wait(10)

    spans = spans_of(found)
    assert found.paths[0] == "/v1/traces"
    names = {name for name, *_ in spans}
    assert {"POST /api/v1/incidents", "GET /api/v1/incidents/{incident_id}"} <= names
    (created,) = [s for s in spans if s[0] == "POST /api/v1/incidents"]
    assert created[1] == TRACE_ID  # the caller's trace continues
    assert created[2]["http.response.status_code"] == 201
    assert created[2]["http.route"] == "/api/v1/incidents"
    assert created[3] == "dragon-test"
    requests = [e for e in logged if e["event"] == "request"]
    assert requests[0]["trace_id"] == TRACE_ID
    assert requests[1]["trace_id"] not in ("", TRACE_ID)
