"""Rate limits: verdicts are counted per principal, every limited answer says how much room is
left, and a refusal is a 429 problem with Retry-After that changes nothing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from dragon.app import create_app
from dragon.settings import Settings, parse_rate_limits
from tests.api.test_decisions_api import pending, verdict
from tests.conftest import FakeClock, Keys
from tests.support.readiness import app_ready


@pytest.fixture
async def app(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    tight = settings.model_copy(update={"rate_limits": "approvals=2/hour"})
    application = create_app(tight, clock=clock)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        yield application


async def test_verdicts_carry_rate_limit_headers(client: httpx.AsyncClient, keys: Keys) -> None:
    decision = await pending(client, keys)
    answer = await verdict(client, keys, decision["id"], "approver")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-ratelimit-limit"] == "2"
    assert answer.headers["x-ratelimit-remaining"] == "1"
    reset = int(answer.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 3600 + 1


async def test_verdicts_past_the_rate_get_429_and_change_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first, second, third = [await pending(client, keys) for _ in range(3)]
    for decision in (first, second):
        assert (await verdict(client, keys, decision["id"], "approver")).status_code == 200
    refused = await verdict(client, keys, third["id"], "approver")
    assert refused.status_code == 429, refused.text
    problem = refused.json()
    assert problem["code"] == "rate_limited"
    assert problem["scope"] == "approvals"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["x-ratelimit-remaining"] == "0"
    after = await client.get(f"/api/v1/decisions/{third['id']}", headers=keys.of("viewer"))
    assert after.json()["approvals"] == []


async def test_the_rate_is_counted_per_principal(client: httpx.AsyncClient, keys: Keys) -> None:
    decisions = [await pending(client, keys) for _ in range(3)]
    for decision in decisions[:2]:
        assert (await verdict(client, keys, decision["id"], "approver")).status_code == 200
    other = await verdict(client, keys, decisions[2]["id"], "approver2")
    assert other.status_code == 200, other.text
    assert other.headers["x-ratelimit-remaining"] == "1"


async def test_the_legacy_approvals_alias_shares_the_scope(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decisions = [await pending(client, keys) for _ in range(3)]
    for decision in decisions[:2]:
        assert (await verdict(client, keys, decision["id"], "approver")).status_code == 200
    refused = await client.post(
        "/api/approvals",
        json={"decision_id": decisions[2]["id"], "approved": True},
        headers=keys.of("approver"),
    )
    assert refused.status_code == 429, refused.text


def test_rate_limit_settings_name_the_bad_part() -> None:
    assert (
        parse_rate_limits("playground=10/hour, approvals = 20 per minute")["approvals"].amount == 20
    )
    with pytest.raises(ValueError, match="not `scope=rate`"):
        parse_rate_limits("playground")
    with pytest.raises(ValueError, match="'often' is not a rate"):
        parse_rate_limits("playground=often")
    with pytest.raises(ValueError, match="is not a rate"):
        Settings(_env_file=None, rate_limits="x=often")  # type: ignore[call-arg]


def test_the_default_rates_are_the_original_systems() -> None:
    defaults = parse_rate_limits(Settings.model_fields["rate_limits"].default)
    rates = {scope: (item.amount, item.GRANULARITY.name) for scope, item in defaults.items()}
    assert rates == {
        "approvals": (20, "hour"),
        "generate": (50, "hour"),
        "playground": (10, "hour"),
    }
