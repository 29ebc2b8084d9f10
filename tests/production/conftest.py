"""Fixtures for production-mode tests: a real Redis (DRAGON_TEST_REDIS_URL, keys under a prefix
unique to each test and deleted after it), an address where no Redis listens, and apps built
from settings a test adjusts."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis

from dragon.app import create_app
from dragon.settings import Settings
from tests.conftest import FakeClock

REDIS_URL = os.environ.get("DRAGON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"dragon-test:{uuid.uuid4().hex}:"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    try:
        names = [name async for name in redis.scan_iter(match=f"{prefix}*")]
        if names:
            await redis.delete(*names)
    finally:
        await redis.aclose()


@pytest.fixture
async def redis(redis_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


AppFactory = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
def make_app(settings: Settings, clock: FakeClock) -> AppFactory:
    """An app (and a client for it) from the suite's settings with some of them changed."""

    @asynccontextmanager
    async def build(**changes: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        application = create_app(settings.model_copy(update=changes), clock=clock)
        async with LifespanManager(application, startup_timeout=30):
            transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 40000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://dragon.test"
            ) as http:
                yield application, http

    return build
