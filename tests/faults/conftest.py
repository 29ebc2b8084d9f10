"""Fixtures of the fault tests: `dragon serve` replicas (the ingestion process tests' `launch`),
`dragon worker` processes and a private redis-server, each stopped by its PID after the test."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.integration.test_ingest_processes import DRAGON, launch
from tests.support.ports import free_port

__all__ = ["PrivateRedis", "StartWorkers", "launch", "private_redis", "workers"]

StartWorkers = Callable[[dict[str, str], int], Awaitable[list[asyncio.subprocess.Process]]]


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, stopped by its PID."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing (Debian's redis-server package)"
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        pytest.fail("the private redis-server did not listen in 10 s")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    await redis.start()
    yield redis
    await redis.kill()


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[StartWorkers]:
    """Starts `dragon worker` processes (output in worker-N.log) and returns them; stops the
    ones still running after the test."""
    started: list[asyncio.subprocess.Process] = []

    async def start(env: dict[str, str], count: int) -> list[asyncio.subprocess.Process]:
        first = len(started)
        for number in range(first, first + count):
            with (tmp_path / f"worker-{number}.log").open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    str(DRAGON),
                    "worker",
                    env=env,
                    cwd=tmp_path,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            started.append(process)
        return started[first:]

    yield start
    for process in started:
        if process.returncode is None:
            process.terminate()
    for process in started:
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()
