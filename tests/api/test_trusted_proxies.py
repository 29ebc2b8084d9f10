"""DRAGON_FORWARDED_ALLOW_IPS: only a listed proxy's X-Forwarded-For and X-Forwarded-Proto are
believed. Behind it each visitor has their own playground budget and HTTPS gets HSTS; anyone
else's forwarded headers change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import ValidationError

from dragon.app import create_app
from dragon.settings import Settings
from tests.conftest import FakeClock
from tests.support.readiness import app_ready

PROXY = "10.1.2.3"
STRANGER = "198.51.100.40"
BODY = {"title": "Rerun the job", "action": "rerun_job"}


@pytest.fixture
async def proxied(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    configured = settings.model_copy(update={"forwarded_allow_ips": "10.1.0.0/16, 192.0.2.1"})
    application = create_app(configured, clock=clock)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        yield application


def from_address(app: FastAPI, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://dragon.test")


async def spend(client: httpx.AsyncClient, times: int, **headers: str) -> list[int]:
    statuses = []
    for _ in range(times):
        response = await client.post("/api/v1/playground/decisions", json=BODY, headers=headers)
        statuses.append(response.status_code)
    return statuses


async def test_behind_a_trusted_proxy_each_visitor_has_their_own_budget(proxied: FastAPI) -> None:
    async with from_address(proxied, PROXY) as proxy:
        first = await spend(proxy, 11, **{"X-Forwarded-For": "203.0.113.1"})
        assert first == [201] * 10 + [429]
        other = await spend(proxy, 1, **{"X-Forwarded-For": "203.0.113.2"})
        assert other == [201]


async def test_an_untrusted_sender_cannot_dodge_the_limit_with_x_forwarded_for(
    proxied: FastAPI,
) -> None:
    async with from_address(proxied, STRANGER) as stranger:
        statuses = []
        for n in range(11):
            statuses += await spend(stranger, 1, **{"X-Forwarded-For": f"203.0.113.{n + 10}"})
        assert statuses == [201] * 10 + [429]


async def test_without_the_setting_no_forwarded_header_is_believed(app: FastAPI) -> None:
    async with from_address(app, PROXY) as proxy:
        statuses = []
        for n in range(11):
            statuses += await spend(proxy, 1, **{"X-Forwarded-For": f"203.0.113.{n + 10}"})
        assert statuses == [201] * 10 + [429]
        plain = await proxy.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in plain.headers


async def test_https_reported_by_a_trusted_proxy_gets_hsts_and_secure_cookies(
    proxied: FastAPI,
) -> None:
    async with from_address(proxied, PROXY) as proxy:
        secure = await proxy.get(
            "/login", headers={"X-Forwarded-Proto": "https", "Accept": "text/html"}
        )
        assert secure.headers["strict-transport-security"].startswith("max-age=")
        assert "Secure" in secure.headers["set-cookie"]
    async with from_address(proxied, STRANGER) as stranger:
        spoofed = await stranger.get(
            "/login", headers={"X-Forwarded-Proto": "https", "Accept": "text/html"}
        )
        assert "strict-transport-security" not in spoofed.headers
        assert "Secure" not in spoofed.headers["set-cookie"]


def test_a_proxy_list_that_is_not_addresses_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an address or network"):
        Settings(_env_file=None, forwarded_allow_ips="proxy.internal")  # type: ignore[call-arg]
    assert Settings(_env_file=None, forwarded_allow_ips="*").trusted_proxies() == ["*"]  # type: ignore[call-arg]
