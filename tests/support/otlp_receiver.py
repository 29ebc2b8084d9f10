"""A real OTLP/HTTP trace receiver on loopback (protobuf over HTTP, as the SDK's exporter
sends), for the tracing tests in-process and across `dragon` processes, and the spans it got."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

# The sender's trace, as a W3C traceparent: every test's spans must continue it.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Collector:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.received = threading.Event()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    """The receiver and its traces endpoint; a module that uses it imports this fixture."""
    found = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            parsed = ExportTraceServiceRequest()
            parsed.ParseFromString(body)
            found.requests.append(parsed)
            found.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            found.received.set()

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found, f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Exported:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int


def exported(found: Collector) -> list[Exported]:
    return [
        Exported(
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_id=span.parent_span_id.hex(),
            kind=span.kind,
        )
        for request in found.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def only(spans: list[Exported], name: str) -> Exported:
    matching = [s for s in spans if s.name == name]
    assert len(matching) == 1, (name, [s.name for s in spans])
    return matching[0]
