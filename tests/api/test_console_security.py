"""Security headers on console pages, compression, and CORS granted to listed origins only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from dragon.app import create_app
from dragon.settings import Settings
from tests.api.console_session import log_in, page
from tests.conftest import FakeClock, Keys
from tests.support.readiness import app_ready

LISTED = "https://ops.example.com"


async def test_console_pages_forbid_inline_scripts_and_framing(client: httpx.AsyncClient) -> None:
    response = await page(client, "/login")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "strict-transport-security" not in response.headers  # plain http
    assert "<script>" not in response.text  # only <script src=...>


async def test_the_console_script_and_stylesheet_are_served_as_files(
    client: httpx.AsyncClient,
) -> None:
    script = await client.get("/static/console.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert (await client.get("/static/console.css")).status_code == 200
    assert (await client.get("/static/../app.py")).status_code == 404
    assert (await client.get("/static/nothing.js")).status_code == 404


async def test_large_responses_are_gzip_compressed(client: httpx.AsyncClient, keys: Keys) -> None:
    await log_in(client, keys.admin)
    raw = await client.get("/policy", headers={"accept": "text/html", "accept-encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert int(raw.headers["content-length"]) < len(raw.content)  # httpx decoded it
    assert "<h1>Policy</h1>" in raw.text


async def test_without_configured_origins_no_origin_gets_a_cors_grant(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/playground/scenarios", headers={"origin": LISTED})
    assert "access-control-allow-origin" not in response.headers


@pytest.fixture
async def cors_client(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(update={"cors_origins": f"{LISTED}, https://b.example.com"})
    application: FastAPI = create_app(configured, clock=clock)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            yield http


async def test_a_listed_origin_gets_a_grant_with_credentials(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.get("/api/v1/playground/scenarios", headers={"origin": LISTED})
    assert response.headers["access-control-allow-origin"] == LISTED
    assert response.headers["access-control-allow-credentials"] == "true"
    preflight = await cors_client.options(
        "/api/v1/dashboard",
        headers={
            "origin": LISTED,
            "access-control-request-method": "GET",
            "access-control-request-headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == LISTED


async def test_an_unlisted_origin_gets_no_grant(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get(
        "/api/v1/playground/scenarios", headers={"origin": "https://evil.example.net"}
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers
    preflight = await cors_client.options(
        "/api/v1/dashboard",
        headers={"origin": "https://evil.example.net", "access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
