"""Guarantee 1: when the store is unreachable, nothing is acknowledged: senders get 503 with
Retry-After, so they retry, and never a 500."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.app import create_app
from dragon.settings import Settings
from tests.conftest import POSTGRES_URL, WEBHOOK_SECRETS, FakeClock, Keys
from tests.support.ports import free_port


@pytest.fixture
async def never_ready(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """A process whose store was unreachable from the start: initialisation never finished."""
    async with serving(clock, became_ready=False) as http:
        yield http


@pytest.fixture
async def unreachable(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """A process that started, whose store went away afterwards."""
    async with serving(clock, became_ready=True) as http:
        yield http


@contextlib.asynccontextmanager
async def serving(clock: FakeClock, *, became_ready: bool) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test",
        bootstrap_admin=False,
        worker_enabled=False,
        github_webhook_secret=WEBHOOK_SECRETS["github"],
        log_format="console",
    )
    app: FastAPI = create_app(settings, clock=clock)
    async with LifespanManager(app, startup_timeout=30):
        app.state.ready = became_ready
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            yield http


async def test_webhook_is_answered_503_with_retry_after_when_the_store_is_down(
    unreachable: httpx.AsyncClient,
) -> None:
    body = b'{"action": "completed", "workflow_run": {}}'
    digest = hmac.new(WEBHOOK_SECRETS["github"].encode(), body, hashlib.sha256).hexdigest()
    response = await unreachable.post(
        "/webhooks/github",
        content=body,
        headers={
            "content-type": "application/json",
            "x-github-event": "workflow_run",
            "x-github-delivery": str(uuid.uuid4()),
            "x-hub-signature-256": f"sha256={digest}",
        },
    )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["retry-after"]) > 0


async def test_authenticated_api_call_is_503_not_500_when_the_store_is_down(
    unreachable: httpx.AsyncClient,
) -> None:
    response = await unreachable.get(
        "/api/v1/incidents", headers={"Authorization": "Bearer drg_" + "a" * 43}
    )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"


async def test_readiness_names_the_database_when_the_store_is_down(
    unreachable: httpx.AsyncClient,
) -> None:
    response = await unreachable.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("unreachable")


async def test_before_initialisation_finished_every_request_but_the_probes_is_503_not_ready(
    never_ready: httpx.AsyncClient,
) -> None:
    webhook = await never_ready.post("/webhooks/github", content=b"{}")
    listing = await never_ready.get("/api/v1/incidents")
    console = await never_ready.get("/")
    live = await never_ready.get("/livez")
    ready = await never_ready.get("/readyz")

    for refused in (webhook, listing, console):
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "not_ready"
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["correlation_id"]
    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"]["startup"] == "initialisation has not finished"


async def test_connections_the_server_dropped_cost_at_most_one_503_then_reads_recover(
    client: httpx.AsyncClient, keys: Keys, database_url: str
) -> None:
    """The pool does not ping before each checkout (store.database.connect): a connection the
    server dropped fails its first statement, that request gets 503 with Retry-After, and the
    pool discards every connection opened before, so the next request connects afresh."""
    if not POSTGRES_URL:
        return  # SQLite has no server to drop a connection
    assert (await client.get("/api/v1/incidents", headers=keys.of("viewer"))).status_code == 200
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            dropped = await connection.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            assert dropped.scalar()  # the app's pooled connections
    finally:
        await engine.dispose()

    answers = [await client.get("/api/v1/incidents", headers=keys.of("viewer")) for _ in range(4)]

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(503) <= 1, statuses
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-1] == 200, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["retry-after"]
            assert answer.json()["code"] == "database_unavailable"
