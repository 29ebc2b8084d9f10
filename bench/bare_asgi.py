"""The baseline for bench_ingest: an ASGI app that reads the body and answers 202, nothing else."""

from __future__ import annotations

from typing import Any

_BODY = b'{"status":"accepted"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})
