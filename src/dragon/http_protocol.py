"""uvicorn's httptools protocol with one socket write per answer instead of two.

uvicorn writes an answer's status line and headers as soon as the app sends
`http.response.start`, then its body on `http.response.body`: two send() calls, two TCP
segments and often two wake-ups of the client, for an answer of a few hundred bytes. Over
loopback that second write cost the bare ASGI endpoint about 13 µs of CPU per request (a
fifth of all it spends) and the client as much again. Here the writes a connection makes in
one turn of the event loop go out together at the end of that turn: headers and body of a
plain answer leave in one write, and the headers of a streamed answer still leave at once,
without waiting for its body.

`dragon serve` runs uvicorn with it (`http=CoalescingHttpToolsProtocol`); so does the bench's
bare endpoint, which is served as Dragon is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A connection's transport whose writes wait for the end of the loop's turn, then leave
    in one write. Closing writes what is held first; everything else is the transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._held)

    def __getattr__(self, name: str) -> Any:
        # is_closing, get_extra_info, pause_reading, resume_reading, set_protocol, abort...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalescing: Any = CoalescingTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        super().connection_made(coalescing)
