"""The webhook receivers' lean ASGI path keeps every guarantee of the routes it serves: the
access table and OpenAPI still list them, every middleware around the app still sees them,
and answers (errors included) carry the same envelope, correlation id and security headers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import sqlalchemy as sa
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.access import ACCESS, PUBLIC
from dragon.api.middleware import answer_headers
from dragon.api.routes.webhooks import WebhookFastPath
from dragon.app import create_app
from dragon.services.container import Services
from dragon.settings import Settings
from dragon.store.tables import deliveries
from tests.api.test_ingestion import fixture, github_headers
from tests.conftest import FakeClock
from tests.support.readiness import app_ready
from tests.support.store_locks import table_locked

SOURCES = ("github", "gitlab", "jenkins", "alertmanager")


class Recorder:
    """A generic pure ASGI middleware, as another part of Dragon might add one."""

    def __init__(self, app: ASGIApp, *, seen: list[tuple[str, int]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.fixture
async def recorded(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[httpx.AsyncClient, list[tuple[str, int]], Services]]:
    application = create_app(settings, clock=clock)
    seen: list[tuple[str, int]] = []
    application.add_middleware(Recorder, seen=seen)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            yield http, seen, application.state.services


def test_every_receiver_is_public_in_the_access_table_and_documented_in_openapi(
    app: FastAPI,
) -> None:
    paths = app.openapi()["paths"]
    for source in SOURCES:
        assert ACCESS[("POST", f"/webhooks/{source}")] == PUBLIC
        assert "post" in paths[f"/webhooks/{source}"]


def test_the_lean_path_serves_only_receivers_the_access_table_lists_as_public(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ACCESS, ("POST", "/webhooks/gitlab"), "admin")
    lean = WebhookFastPath(
        FastAPI(), ingest=services.ingest, sources=SOURCES, max_body_bytes=1024 * 1024
    )
    assert set(lean.paths.values()) == {"github", "jenkins", "alertmanager"}


async def test_the_lean_path_stores_a_delivery_without_the_apps_routes(
    services: Services,
) -> None:
    lean = WebhookFastPath(
        FastAPI(), ingest=services.ingest, sources=SOURCES, max_body_bytes=1024 * 1024
    )
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    transport = httpx.ASGITransport(app=lean)
    async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
        served = await http.post(
            "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
        )
        passed_on = await http.post("/webhooks/unknown", content=body)
    assert served.status_code == 202
    assert served.json()["status"] == "accepted"
    assert passed_on.status_code == 404  # the (empty) app behind it answered
    assert await services.processor.run_due() == 1


async def test_a_middleware_added_to_the_app_sees_webhook_deliveries_and_their_answers(
    recorded: tuple[httpx.AsyncClient, list[tuple[str, int]], Services],
) -> None:
    client, seen, services = recorded
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    accepted = await client.post(
        "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
    )
    refused = await client.post(
        "/webhooks/github", content=body, headers={"x-github-event": "workflow_run"}
    )
    assert (accepted.status_code, refused.status_code) == (202, 401)
    assert seen == [("/webhooks/github", 202), ("/webhooks/github", 401)]
    assert await services.processor.run_due() == 1


async def test_answers_carry_the_correlation_id_and_security_headers(
    client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    headers = {**github_headers(body, "workflow_run"), "x-correlation-id": "trace-42"}
    accepted = await client.post("/webhooks/github", content=body, headers=headers)
    assert accepted.status_code == 202
    assert accepted.headers["x-correlation-id"] == "trace-42"
    assert accepted.headers["x-content-type-options"] == "nosniff"
    assert accepted.headers["content-security-policy"].startswith("default-src 'none'")
    assert accepted.headers["content-type"] == "application/json"

    headers["x-hub-signature-256"] = "sha256=" + "0" * 64
    refused = await client.post("/webhooks/github", content=body, headers=headers)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["x-correlation-id"] == "trace-42"
    assert refused.headers["www-authenticate"] == 'Bearer realm="dragon"'
    assert refused.json() == {
        "type": "urn:dragon:problem:signature_invalid",
        "title": "Unauthorized",
        "status": 401,
        "detail": "X-Hub-Signature-256 is missing, malformed or does not match the body",
        "code": "signature_invalid",
        "correlation_id": "trace-42",
    }


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_an_accepted_answer_has_the_headers_the_stack_gives_every_answer(
    app: FastAPI, scheme: str
) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://dragon.test") as http:
        accepted = await http.post(
            "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
        )
    assert accepted.status_code == 202
    own = [
        (b"content-type", b"application/json"),
        (b"content-length", accepted.headers["content-length"].encode()),
    ]
    expected = answer_headers(
        own,
        scope={"path": "/webhooks/github", "scheme": scheme, "state": {}},
        correlation_id=accepted.headers["x-correlation-id"].encode(),
    )
    assert accepted.headers.raw == expected
    assert ("strict-transport-security" in accepted.headers) == (scheme == "https")


async def test_a_streamed_body_over_the_limit_is_a_413_problem(
    client: httpx.AsyncClient,
) -> None:
    chunk = b" " * (1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(6):  # no Content-Length: the limit is found while reading
            yield chunk

    body = b"".join([chunk] * 6)
    response = await client.post(
        "/webhooks/github", content=chunks(), headers=github_headers(body, "workflow_run")
    )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


async def test_other_methods_on_a_receiver_still_get_the_apps_answer(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/webhooks/github")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_a_delivery_whose_store_waits_past_the_deadline_is_a_503_at_the_deadline(
    settings: Settings, clock: FakeClock
) -> None:
    changed = settings.model_copy(update={"request_timeout_seconds": 0.5})
    application = create_app(changed, clock=clock)
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    headers = github_headers(body, "workflow_run")
    async with LifespanManager(application, startup_timeout=30):
        await app_ready(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            with structlog.testing.capture_logs() as logged:
                async with table_locked(application.state.database, deliveries):
                    started = time.perf_counter()
                    cut = await http.post("/webhooks/github", content=body, headers=headers)
                    waited = time.perf_counter() - started
            # The sender retries, as Retry-After asks: stored once, whatever the cut left.
            retried = await http.post("/webhooks/github", content=body, headers=headers)
            again = await http.post("/webhooks/github", content=body, headers=headers)
    assert cut.status_code == 503
    assert cut.json()["code"] == "request_timeout"
    assert cut.headers["retry-after"] == "5"
    assert cut.headers["x-correlation-id"]
    assert 0.4 < waited < 5
    (event,) = [e for e in logged if e["event"] == "request_deadline_exceeded"]
    assert event["path"] == "/webhooks/github"
    assert retried.status_code in (200, 202)
    assert again.status_code == 200
    assert again.json()["delivery_id"] == retried.json()["delivery_id"]


async def test_accepted_webhook_deliveries_count_under_their_route_template(
    client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    before = REGISTRY.get_sample_value(
        "dragon_deliveries_accepted_total", {"route": "/webhooks/github"}
    )
    accepted = await client.post(
        "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
    )
    assert accepted.status_code == 202
    after = REGISTRY.get_sample_value(
        "dragon_deliveries_accepted_total", {"route": "/webhooks/github"}
    )
    assert (after or 0) - (before or 0) == 1
    timed = REGISTRY.get_sample_value(
        "dragon_http_request_duration_seconds_count",
        {"method": "POST", "route": "/webhooks/github", "status": "202"},
    )
    assert timed is not None
    assert timed >= 1


async def test_an_accepted_delivery_is_logged_with_its_correlation_id_and_status(
    client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    headers = {**github_headers(body, "workflow_run"), "x-correlation-id": "trace-43"}
    with structlog.testing.capture_logs() as logged:
        accepted = await client.post("/webhooks/github", content=body, headers=headers)
    assert accepted.status_code == 202
    (line,) = [e for e in logged if e["event"] == "request"]
    assert (line["method"], line["path"], line["status"]) == ("POST", "/webhooks/github", 202)


async def test_a_delivery_before_the_process_is_ready_is_a_503_and_is_not_stored(
    settings: Settings, clock: FakeClock
) -> None:
    application = create_app(settings, clock=clock)  # no lifespan: never ready
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
        refused = await http.post(
            "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
        )
    assert refused.status_code == 503
    assert refused.json()["code"] == "not_ready"
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["x-correlation-id"]
    async with application.state.database.reader.connect() as connection:
        stored = await connection.scalar(sa.text("SELECT count(*) FROM deliveries"))
    await application.state.database.dispose()
    assert stored == 0


async def test_a_delivery_the_fast_path_passes_on_gets_the_same_answer_from_the_route(
    client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    headers = github_headers(body, "workflow_run")
    # An Origin (CORS is the stack's to judge) sends the delivery through the documented route.
    routed = await client.post(
        "/webhooks/github", content=body, headers={**headers, "origin": "https://ci.example"}
    )
    again = await client.post("/webhooks/github", content=body, headers=headers)
    assert routed.status_code == 202
    assert routed.json()["status"] == "accepted"
    assert routed.headers["x-content-type-options"] == "nosniff"
    assert again.status_code == 200  # the fast path finds the delivery the route stored
    assert again.json()["delivery_id"] == routed.json()["delivery_id"]


async def test_a_nul_in_a_receivers_query_is_the_stacks_400(client: httpx.AsyncClient) -> None:
    body = orjson.dumps(fixture("github", "workflow_run.completed.failure"))
    refused = await client.post(
        "/webhooks/github?x=%00", content=body, headers=github_headers(body, "workflow_run")
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "query_invalid"
