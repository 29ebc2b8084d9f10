"""A stand-in for api.github.com on 127.0.0.1, speaking real HTTP, for the calls Dragon's
GitHub actions make. Shapes follow GitHub's REST documentation (see
tests/fixtures/github/SOURCES.md); the contract test checks the same calls against GitHub's
published OpenAPI description. It counts every call and can be told to fail or stall."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt


@dataclass
class Scripted:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GitHubState:
    token: str = "ghs_test_token_for_dragon_0123456789"
    app_public_key: str | None = None
    app_id: str = "12345"
    # The time app JWTs are checked against: the test's clock, as Dragon's is.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    installation_token_expires: str = "2026-11-22T10:00:00Z"  # an hour after FakeClock's start
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    run_attempts: dict[str, int] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    bodies: list[tuple[str, Any]] = field(default_factory=list)
    # "METHOD /path-regex" -> responses to give before behaving normally.
    script: dict[str, list[Scripted]] = field(default_factory=dict)
    stall: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued_tokens: list[str] = field(default_factory=list)
    # "METHOD /path" -> the W3C traceparent each call carried (None: it carried none).
    traceparents: list[tuple[str, str | None]] = field(default_factory=list)

    def count(self, method: str, pattern: str) -> int:
        return sum(
            n
            for key, n in self.calls.items()
            if key.startswith(method + " ") and re.fullmatch(pattern, key.split(" ", 1)[1])
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _authorized(self, state: GitHubState, path: str) -> bool:
        header = self.headers.get("Authorization", "")
        if path.startswith("/app/"):
            if state.app_public_key is None:
                return False
            try:
                claims = jwt.decode(
                    header.removeprefix("Bearer "),
                    state.app_public_key,
                    algorithms=["RS256"],
                    options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat"]},
                )
            except jwt.PyJWTError:
                return False
            now = state.clock().timestamp()
            # GitHub: iss is the app id, and the token lives ten minutes at most.
            return (
                str(claims.get("iss")) == state.app_id
                and claims["iat"] <= now < claims["exp"]
                and claims["exp"] - claims["iat"] <= 600
            )
        valid = {state.token, *state.issued_tokens}
        return header.removeprefix("Bearer ") in valid

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        path = url.path
        body = self._body() if method == "POST" else None
        key = f"{method} {path}"
        with state.lock:
            state.calls[key] += 1
            state.bodies.append((key, body))
            state.traceparents.append((key, self.headers.get("traceparent")))
            scripted = None
            for pattern, queue in state.script.items():
                m, _, p = pattern.partition(" ")
                if m == method and re.fullmatch(p, path) and queue:
                    scripted = queue.pop(0)
                    break
            stall = next(
                (
                    s
                    for pattern, s in state.stall.items()
                    if pattern.split(" ", 1)[0] == method
                    and re.fullmatch(pattern.split(" ", 1)[1], path)
                ),
                0.0,
            )
        if path.startswith("/hooks/"):
            # Not GitHub: a deploy hook a runbook's http_call step may call (no auth).
            with state.lock:
                state.bodies.append((f"{key} idempotency-key", self.headers.get("Idempotency-Key")))
            self._reply(200, {"ok": True})
            return
        if not self._authorized(state, path):
            self._reply(
                401,
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            )
            return
        if scripted is not None:
            self._reply(scripted.status, scripted.body, scripted.headers)
            return
        with state.lock:
            status, answer = self._route(state, method, path, parse_qs(url.query), body)
        if stall:
            time.sleep(stall)
        self._reply(status, answer)

    def _route(  # noqa: PLR0911 - one return per GitHub route served
        self, state: GitHubState, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if m := re.fullmatch(r"/app/installations/(\d+)/access_tokens", path):
            token = f"ghs_installation_{len(state.issued_tokens)}_{m[1]}"
            state.issued_tokens.append(token)
            return 201, {"token": token, "expires_at": state.installation_token_expires}
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)", path):
            attempt = state.run_attempts.get(m[2], 1)
            return 200, {
                "id": int(m[2]),
                "run_attempt": attempt,
                "html_url": f"https://github.com/{m[1]}/actions/runs/{m[2]}",
                "status": "completed",
                "conclusion": "failure",
            }
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)/rerun-failed-jobs", path):
            state.run_attempts[m[2]] = state.run_attempts.get(m[2], 1) + 1
            return 201, {}
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/(issues/\d+|commits/[0-9a-f]+)/comments", path):
            thread = f"{m[1]}#{m[2]}"
            if method == "GET":
                return 200, state.comments.get(thread, [])
            made = {
                "id": len(state.comments.get(thread, [])) + 1,
                "body": body["body"],
                "html_url": f"https://github.com/{m[1]}/{m[2]}#comment",
            }
            state.comments.setdefault(thread, []).append(made)
            return 201, made
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/pulls", path):
            pulls = state.pulls.setdefault(m[1], [])
            owner = m[1].split("/")[0]
            if method == "GET":
                # GitHub's filters: `head` as owner:branch, `state` open (its default),
                # closed or all.
                head = query.get("head", [""])[0]
                wanted = query.get("state", ["open"])[0]
                return 200, [
                    p
                    for p in pulls
                    if f"{owner}:{p['head']['ref']}" == head and wanted in ("all", p["state"])
                ]
            if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in pulls):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"message": "A pull request already exists"}],
                }
            number = len(pulls) + 1
            made = {
                "number": number,
                "state": "open",
                "html_url": f"https://github.com/{m[1]}/pull/{number}",
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
                "draft": body.get("draft", False),
                "title": body["title"],
                "body": body["body"],
            }
            pulls.append(made)
            return 201, made
        return 404, {"message": "Not Found", "documentation_url": f"{base}/docs"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: GitHubState


class FakeGitHub:
    def __init__(self, state: GitHubState | None = None) -> None:
        self.state = state or GitHubState()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
