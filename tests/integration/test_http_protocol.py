"""Specification of Dragon's HTTP protocol under uvicorn, over real loopback sockets: an answer
leaves in one write, streamed headers do not wait for their body, and a closing connection
still delivers everything it was given."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from dragon.http_protocol import CoalescingHttpToolsProtocol

_BODY = b'{"status":"accepted"}'
_writes: list[bytes] = []
_release_stream = asyncio.Event()


class _RecordedWrites:
    """The connection's real transport, with each write it is given recorded."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        _writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Recording(CoalescingHttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        recorded: Any = _RecordedWrites(transport)  # type: ignore[arg-type]
        super().connection_made(recorded)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_BODY))]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    if scope["path"] == "/stream":
        await _release_stream.wait()
    await send({"type": "http.response.body", "body": _BODY})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    # Listening before uvicorn starts: a connection made meanwhile waits in the backlog.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    free: int = listening.getsockname()[1]
    config = uvicorn.Config(_app, http=_Recording, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    _writes.clear()
    _release_stream.clear()
    task = asyncio.create_task(server.serve(sockets=[listening]))
    yield free
    server.should_exit = True
    await task
    listening.close()


async def _ask(port: int, path: str, *, close: bool = False) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = b"close" if close else b"keep-alive"
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: %s\r\n\r\n{}"
        % (path.encode(), connection)
    )
    await writer.drain()
    return reader, writer


async def test_an_answer_leaves_in_one_write(port: int) -> None:
    reader, writer = await _ask(port, "/plain")
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.readexactly(len(_BODY))
    writer.close()
    assert head.startswith(b"HTTP/1.1 202 ")
    assert body == _BODY
    assert _writes == [head + body]


async def test_streamed_headers_leave_before_their_body_is_sent(port: int) -> None:
    reader, writer = await _ask(port, "/stream")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 ")
    _release_stream.set()
    assert await reader.readexactly(len(_BODY)) == _BODY
    writer.close()
    assert _writes == [head, _BODY]


async def test_a_closing_connection_delivers_its_whole_answer_first(port: int) -> None:
    reader, writer = await _ask(port, "/plain", close=True)
    async with asyncio.timeout(5):
        received = await reader.read()  # to the end: the server closes after answering
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    assert received.startswith(b"HTTP/1.1 202 ")
    assert received.endswith(b"\r\n\r\n" + _BODY)
    assert len(_writes) == 1
