"""Waiting for a `dragon serve` a test started: poll /readyz until a deadline, fail at once
(saying so) if the process exits first. Start-up on a loaded machine may take many seconds; a
deadline costs only a failing test its length, never a passing one."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

READY_SECONDS = 60.0
POLL_SECONDS = 0.1


def _no_output() -> str:
    return ""


async def wait_ready(
    url: str,
    *,
    process: asyncio.subprocess.Process,
    seconds: float = READY_SECONDS,
    output: Callable[[], str] = _no_output,
) -> None:
    """Returns once `url`/readyz answers 200."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                pytest.fail(f"dragon serve exited {process.returncode}:\n{output()}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(POLL_SECONDS)
    pytest.fail(f"dragon serve was not ready in {seconds:.0f} s:\n{output()}")


def wait_ready_blocking(
    url: str,
    *,
    process: subprocess.Popen[Any],
    seconds: float = READY_SECONDS,
    output: Callable[[], str] = _no_output,
    probe: str = "/readyz",
    name: str = "dragon serve",
) -> None:
    """The same for a test that runs no event loop; `probe` and `name` let it wait for another
    server the test starts beside Dragon (Alertmanager's `/-/ready`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited {process.returncode} before it was ready:\n{output()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}{probe}", timeout=2).status_code == 200:
                return
        time.sleep(POLL_SECONDS)
    pytest.fail(f"{name} was not ready in {seconds:.0f} s:\n{output()}")


async def app_ready(application: Any, *, seconds: float = READY_SECONDS) -> None:
    """Returns once an app a test runs in-process (its lifespan entered) is ready. A first
    store check that fails (a busy machine) is retried in the background; until then every
    route answers 503 not_ready, as a real process does before its probe passes."""
    deadline = time.monotonic() + seconds
    while not getattr(application.state, "ready", False):
        if getattr(application.state, "startup_failed", False):
            pytest.fail("the app gave up initialising")
        if time.monotonic() > deadline:
            pytest.fail(f"the app was not ready within {seconds:.0f} s")
        await asyncio.sleep(POLL_SECONDS / 2)
