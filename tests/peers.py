"""Local HTTP peers on 127.0.0.1 that stand in for vendors Dragon cannot reach from here
(Slack's Web API, Teams and PagerDuty webhooks, any receiver). They speak real HTTP on a free
port, record every request, and answer from a script the test writes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


Responder = Callable[[Received], Answer]


class HttpPeer:
    def __init__(self, responder: Responder | None = None) -> None:
        self.received: list[Received] = []
        self.script: list[Answer] = []  # answered in order; then `responder`, then 200 {}
        self.responder = responder
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                got = Received(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                answer = peer._answer(got)
                raw = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body)
                data = raw if isinstance(raw, bytes) else raw.encode()
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _answer(self, got: Received) -> Answer:
        with self._lock:
            self.received.append(got)
            if self.script:
                return self.script.pop(0)
        return self.responder(got) if self.responder else Answer()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HttpPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def running_peer(responder: Responder | None = None) -> Iterator[HttpPeer]:
    peer = HttpPeer(responder).start()
    try:
        yield peer
    finally:
        peer.stop()
