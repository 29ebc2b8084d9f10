"""Fixtures for production-mode tests: a real Redis (DRAGON_TEST_REDIS_URL, keys under a prefix
unique to each test and deleted after it), an address where no Redis listens, and apps built
from settings a test adjusts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from dragon.app import create_app
from dragon.logs import configure_logging
from dragon.settings import Settings
from tests.conftest import FakeClock
from tests.support.ports import free_port
from tests.support.readiness import app_ready

REDIS_URL = os.environ.get("DRAGON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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


def with_redis(url: str, prefix: str, **more: Any) -> dict[str, Any]:
    """Settings changes for an app on the Redis at `url`, its keys under `prefix`."""
    return {
        "redis_url": SecretStr(url),
        "redis_key_prefix": prefix,
        "readiness_cache_seconds": 0,
        # The real Redis, on a busy machine: one slow answer must not make it look down here.
        **({"redis_timeout_seconds": 2.0} if url == REDIS_URL else {}),
        **more,
    }


AppFactory = Callable[..., AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]]


@pytest.fixture
def make_app(settings: Settings, clock: FakeClock) -> AppFactory:
    """An app (and a client for it) from the suite's settings with some of them changed."""

    @asynccontextmanager
    async def build(**changes: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        application = create_app(settings.model_copy(update=changes), clock=clock)
        async with LifespanManager(application, startup_timeout=30):
            await app_ready(application)
            transport = httpx.ASGITransport(app=application, client=("203.0.113.9", 40000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://dragon.test"
            ) as http:
                yield application, http

    return build


class RedisLink:
    """A TCP relay on 127.0.0.1 in front of the real Redis that a test can cut and restore,
    or make hang (accept, never answer), without touching the shared Redis server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = free_port()
        self.hanging = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.hanging:
            await reader.read()  # hold the connection open, answer nothing
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers.add(upstream_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture
async def redis_link() -> AsyncIterator[RedisLink]:
    target = urlsplit(REDIS_URL)
    link = RedisLink(target.hostname or "127.0.0.1", target.port or 6379)
    await link.up()
    yield link
    await link.down()


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], None]]:
    """Dragon's real JSON log pipeline onto the test's captured stderr (started from the test
    body, where that stream is in place), uncached so no logger keeps the stream after it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def start() -> None:
        configure_logging(level="info", fmt="json")
        structlog.configure(cache_logger_on_first_use=False)
        capsys.readouterr()

    yield start
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level
