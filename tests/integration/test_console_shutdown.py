"""Stopping `dragon serve` ends its open live-event streams first, so a dashboard left open does
not hold the graceful shutdown; the browser reconnects (to another replica) by itself."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.api.test_access import fresh_database
from tests.e2e.conftest import Server, _issue_keys
from tests.integration.test_ingest_processes import Launch, dragon_env


async def test_sigterm_ends_open_event_streams_and_exits_zero(
    migrated_template: str, tmp_path: Path, launch: Launch
) -> None:
    url = await fresh_database(migrated_template, tmp_path)
    keys = await _issue_keys(url)
    served = await launch(dragon_env(url), "serve")
    server = Server(url=served.url, keys=keys)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        headers = {**server.key("viewer"), "accept": "text/event-stream"}
        async with http.stream("GET", "/api/v1/dashboard/stream", headers=headers) as stream:
            assert stream.status_code == 200
            events = []
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                    if events == ["dashboard"]:
                        served.process.send_signal(signal.SIGTERM)
    assert events == ["dashboard", "closing"]
    assert await asyncio.wait_for(served.process.wait(), 60) == 0
