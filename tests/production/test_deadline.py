"""The deadline middleware on its own: it bounds the wait for an answer to start, answers 503
at the deadline even when the work does not stop at once, and never cuts a stream under way."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from dragon.api.deadline import DeadlineMiddleware


async def slow_to_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        await asyncio.sleep(0.3)  # clean-up that takes a while, as a blocked driver call does
        raise
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one ", b"two ", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
        await asyncio.sleep(0.15)
    await send({"type": "http.response.body", "body": b""})


def client(app: Any, seconds: float) -> httpx.AsyncClient:
    wrapped = DeadlineMiddleware(app, seconds=seconds)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t")


async def test_an_answer_that_has_not_started_by_the_deadline_is_a_503_at_the_deadline() -> None:
    async with client(slow_to_start, 0.2) as http:
        started = time.perf_counter()
        answer = await http.get("/slow")
        waited = time.perf_counter() - started

    assert answer.status_code == 503
    assert answer.json()["code"] == "request_timeout"
    assert waited < 0.45  # the clean-up ran in the background, not before the answer


async def test_a_stream_under_way_is_not_cut_at_the_deadline() -> None:
    async with client(stream, 0.2) as http:
        answer = await http.get("/stream")

    assert answer.status_code == 200
    assert answer.content == b"one two three"
