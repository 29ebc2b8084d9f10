"""procrastinate's worker stops for good when its database goes away; Dragon's job worker
starts it again, its connection pool opened afresh, after a backoff."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dragon.workers.jobs import run_job_worker


class StoppingApp:
    """Stands in for procrastinate's App: its worker fails as on a restarted PostgreSQL
    (raising, or stopping by itself after a side task failed) before it runs for good."""

    def __init__(self, failures: list[BaseException | None]) -> None:
        self.failures = failures
        self.opened = 0
        self.started = 0
        self.running = asyncio.Event()

    @contextlib.asynccontextmanager
    async def open_async(self) -> AsyncIterator[None]:
        self.opened += 1
        yield

    async def run_worker_async(self, **options: Any) -> None:
        self.started += 1
        if self.failures:
            failure = self.failures.pop(0)
            if failure is not None:
                raise failure
            return  # stopped by itself
        self.running.set()
        await asyncio.Event().wait()


async def test_a_worker_that_fails_or_stops_is_started_again_until_it_runs() -> None:
    app = StoppingApp([OSError("connection refused"), None, ConnectionError("reset")])
    worker = asyncio.create_task(
        run_job_worker(app, concurrency=1, backoff_seconds=0.01)  # type: ignore[arg-type]
    )
    try:
        await asyncio.wait_for(app.running.wait(), timeout=5)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert (app.started, app.opened) == (4, 4)


async def test_cancelling_the_job_worker_stops_it_without_a_restart() -> None:
    app = StoppingApp([])
    worker = asyncio.create_task(run_job_worker(app, concurrency=1))  # type: ignore[arg-type]
    await asyncio.wait_for(app.running.wait(), timeout=5)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert app.started == 1
