"""Stopping `dragon serve` ends its open live-event streams first, so a dashboard left open does
not hold the graceful shutdown; the browser reconnects (to another replica) by itself."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tests.api.test_access import fresh_database
from tests.e2e.conftest import Server, _issue_keys
from tests.integration.test_ingest_processes import DRAGON, Launch, dragon_env
from tests.support.ports import free_port
from tests.support.readiness import wait_ready


async def stream_until_stopped(server: Server, *, process: asyncio.subprocess.Process) -> list[str]:
    """The event names of a viewer's dashboard stream, until it ends; `process` gets SIGTERM
    once the first has come."""
    events: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        headers = {**server.key("viewer"), "accept": "text/event-stream"}
        async with http.stream("GET", "/api/v1/dashboard/stream", headers=headers) as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                    if events == ["dashboard"]:
                        process.send_signal(signal.SIGTERM)
    return events


async def test_sigterm_ends_open_event_streams_and_exits_zero(
    migrated_template: str, tmp_path: Path, launch: Launch
) -> None:
    url = await fresh_database(migrated_template, tmp_path)
    keys = await _issue_keys(url)
    served = await launch(dragon_env(url), "serve")
    events = await stream_until_stopped(Server(url=served.url, keys=keys), process=served.process)
    assert events == ["dashboard", "closing"]
    assert await asyncio.wait_for(served.process.wait(), 60) == 0


async def test_sigterm_to_several_server_processes_ends_their_event_streams_too(
    migrated_template: str, tmp_path: Path
) -> None:
    url = await fresh_database(migrated_template, tmp_path)
    keys = await _issue_keys(url)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(DRAGON), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            env=dragon_env(url), cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL, stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its server processes go with it if the test fails
        )  # fmt: skip
    try:
        server = Server(url=f"http://127.0.0.1:{port}", keys=keys)
        await wait_ready(server.url, process=process, output=log.read_text)
        events = await stream_until_stopped(server, process=process)
        # Ended by the server process with its closing event, not cut at the shutdown deadline
        # (the supervisor passes SIGTERM on within half a second: a figure may come first).
        assert events[0] == "dashboard"
        assert events[-1] == "closing"
        assert set(events[1:-1]) <= {"dashboard"}
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
