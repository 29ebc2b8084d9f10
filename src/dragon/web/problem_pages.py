"""Problems a browser meets on a console page, as pages. A timed-out request (the deadline's 503),
an oversized form (413) or an unserved method answers problem+json, which a browser shows as
raw text; this turns such an answer into the console's error page, which says what went wrong
and offers a retry. Answers for scripts and API clients pass untouched."""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.web.rendering import templates

_PROBLEM = "application/problem+json"
_NOT_CONSOLE = ("/api/", "/webhooks/", "/static/", "/integrations/")
_NOT_CONSOLE_PATHS = frozenset({"/livez", "/readyz", "/health", "/metrics", "/openapi.json"})


def is_console_path(path: str) -> bool:
    return not path.startswith(_NOT_CONSOLE) and path not in _NOT_CONSOLE_PATHS


# The page each console form is on: a link cannot post a form again, but it can lead back to it
# (the console sends no Referer, by its Referrer-Policy, so the way back is written down here).
_FORM_PAGES = (
    (re.compile(r"/approvals/[^/]+"), "/approvals"),
    (re.compile(r"/keys(?:/[^/]+/revoke)?"), "/keys"),
    (re.compile(r"/incidents/([^/]+)/[^/]+"), r"/incidents/\1"),
    (re.compile(r"/policy/simulate"), "/policy"),
    (re.compile(r"/runbooks/([^/]+)/runs"), r"/runbooks/\1"),
    (re.compile(r"/login"), "/login"),
)


def retry_target(scope: Scope) -> str:
    """Where "Try again" leads: the same page for a read; for a form post, the form's page."""
    path: str = scope["path"]
    if scope["method"] in ("GET", "HEAD"):
        query = scope.get("query_string", b"").decode("latin-1")
        return path + (f"?{query}" if query else "")
    for pattern, page in _FORM_PAGES:
        if found := pattern.fullmatch(path):
            return found.expand(page)
    return "/"


def _is_problem(start: Message) -> bool:
    return Headers(raw=start["headers"]).get("content-type", "").startswith(_PROBLEM)


class ProblemPages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            is_console_path(scope["path"]) and "text/html" in Headers(scope=scope).get("accept", "")
        ):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        body: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _is_problem(message):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                await self._send_page(scope, send, held, b"".join(body))

        await self.app(scope, receive, rewriting_send)

    @staticmethod
    async def _send_page(scope: Scope, send: Send, start: Message, raw: bytes) -> None:
        try:
            found: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            found = {}
        html = templates.get_template("error.html").render(
            error={
                "message": found.get("detail") or found.get("title") or "Something went wrong",
                "code": found.get("code", "error"),
            },
            retry_url=retry_target(scope),
            principal=None,
            nav=[],
            csrf_token="",
            path=scope["path"],
        )
        page = html.encode()
        headers = [
            (name, value)
            for name, value in start["headers"]
            if name.lower() not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": page})
