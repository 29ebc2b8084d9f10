"""Small HTTP peers on 127.0.0.1 that the CI log generator points real tools at: a registry
that rate-limits or fails, a server that refuses credentials, one that cuts a transfer short,
and a minimal npm registry whose packages cannot be resolved together."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Responder = Callable[[BaseHTTPRequestHandler], None]


def status_responder(status: int, *, headers: dict[str, str] | None = None) -> Responder:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"error": f"status {status}"}).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def truncating_responder(handler: BaseHTTPRequestHandler) -> None:
    """Promise a large body, send a little, close: a transfer lost mid-way."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", "1048576")
    handler.end_headers()
    handler.wfile.write(b"x" * 1024)
    handler.wfile.flush()
    handler.close_connection = True


def npm_registry_responder(packuments: dict[str, dict[str, object]]) -> Responder:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        name = handler.path.lstrip("/").split("?")[0].replace("%2f", "/").replace("%2F", "/")
        document = packuments.get(name)
        if document is None:
            status_responder(404)(handler)
            return
        body = json.dumps(document).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


@contextlib.contextmanager
def serve(respond: Responder) -> Iterator[int]:
    """Serve every GET/POST/PUT with `respond` on a free port; yields the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            respond(self)

        do_POST = do_PUT = do_HEAD = do_GET  # noqa: N815 - the names http.server calls

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers: reads against it time out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port
