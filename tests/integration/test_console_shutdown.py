"""Stopping `dragon serve` ends its open live-event streams first, so a dashboard left open does
not hold the graceful shutdown; the browser reconnects (to another replica) by itself."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tests.api.test_access import fresh_database
from tests.e2e.conftest import DRAGON, Server, _issue_keys, free_port
from tests.support.readiness import wait_ready


async def test_sigterm_ends_open_event_streams_and_exits_zero(
    migrated_template: str, tmp_path: Path
) -> None:
    url = await fresh_database(migrated_template, tmp_path)
    keys = await _issue_keys(url)
    port = free_port()
    env = {**os.environ, "DRAGON_DATABASE_URL": url, "DRAGON_BOOTSTRAP_ADMIN": "false"}
    process = await asyncio.create_subprocess_exec(
        str(DRAGON),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    server = Server(url=f"http://127.0.0.1:{port}", keys=keys)
    try:
        await wait_ready(server.url, process=process)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            headers = {**server.key("viewer"), "accept": "text/event-stream"}
            async with http.stream("GET", "/api/v1/dashboard/stream", headers=headers) as stream:
                assert stream.status_code == 200
                events = []
                async for line in stream.aiter_lines():
                    if line.startswith("event: "):
                        events.append(line.removeprefix("event: "))
                        if events == ["dashboard"]:
                            process.send_signal(signal.SIGTERM)
        assert events == ["dashboard", "closing"]
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
