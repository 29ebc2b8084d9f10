"""Pure ASGI middleware: correlation ids, security headers, the access log and the body limit."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.metrics import observe_request
from dragon.api.problems import problem
from dragon.api.rate_limits import STATE_KEY as RATE_LIMIT_STATE
from dragon.api.rate_limits import RateVerdict

CORRELATION_HEADER = "x-correlation-id"
# fullmatch, not `$`: `$` also matches before a trailing newline, which would let "id\n" through.
_SAFE_CORRELATION = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
# The interactive API docs load Swagger UI's script and styles from its CDN.
_DOCS_CSP = (
    "default-src 'none'; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; frame-ancestors 'none'"
)
# Console pages: scripts and styles from this origin only, never inline; forms post here only.
_CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_NON_CONSOLE_PREFIXES = ("/api/", "/webhooks/", "/livez", "/readyz", "/health", "/openapi.json")
access_log = structlog.get_logger("dragon.access")
# No route has a control character in its path; PostgreSQL cannot even compare text with NUL.
_CONTROL_IN_PATH = re.compile(r"[\x00-\x1f\x7f]")


async def _no_such_route(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(
        404,
        "route_not_found",
        "no route has control characters in its path",
        correlation_id=scope.get("state", {}).get("correlation_id"),
    )
    await response(scope, receive, send)


async def _nul_in_query(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(
        400,
        "query_invalid",
        "a query parameter holds a NUL character (%00), which no value may contain",
        correlation_id=scope.get("state", {}).get("correlation_id"),
    )
    await response(scope, receive, send)


def _refusal(path: str, query: bytes) -> ASGIApp | None:
    if _CONTROL_IN_PATH.search(path):
        return _no_such_route
    if b"%00" in query:
        return _nul_in_query
    return None


_RAW_SECURITY_HEADERS = [
    (name.lower().encode(), value.encode()) for name, value in _SECURITY_HEADERS.items()
]
_RAW_CSPS = {
    csp: (b"content-security-policy", csp.encode()) for csp in (_API_CSP, _DOCS_CSP, _CONSOLE_CSP)
}
_RAW_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_RAW_CORRELATION = CORRELATION_HEADER.encode()


def csp_for(path: str) -> str:
    if path in ("/docs", "/redoc"):
        return _DOCS_CSP
    if path.startswith(_NON_CONSOLE_PREFIXES):
        return _API_CSP
    return _CONSOLE_CSP


def accepted_correlation_id(value: str | None) -> str:
    """Keep a caller's id when it is short and safe to log; otherwise make a new one."""
    if value and _SAFE_CORRELATION.fullmatch(value):
        return value
    return os.urandom(16).hex()


def with_context_headers(
    headers: list[tuple[bytes, bytes]],
    *,
    correlation_id: bytes,
    csp: tuple[bytes, bytes],
    https: bool,
) -> list[tuple[bytes, bytes]]:
    """The response's headers plus the correlation id (replacing any) and the security
    headers the response did not set itself. Works on the raw list: this runs per response."""
    kept = [(name, value) for name, value in headers if name.lower() != _RAW_CORRELATION]
    present = {name.lower() for name, _ in kept}
    kept.append((_RAW_CORRELATION, correlation_id))
    kept.extend(header for header in _RAW_SECURITY_HEADERS if header[0] not in present)
    if b"content-security-policy" not in present:
        kept.append(csp)
    if https:
        kept = [(name, value) for name, value in kept if name.lower() != _RAW_HSTS[0]]
        kept.append(_RAW_HSTS)
    return kept


def answer_headers(
    headers: list[tuple[bytes, bytes]], *, scope: Scope, correlation_id: bytes
) -> list[tuple[bytes, bytes]]:
    """Every answer's headers: its own, the correlation id, the security headers for its
    path, and the rate-limit figures when a limit counted the request."""
    kept = with_context_headers(
        headers,
        correlation_id=correlation_id,
        csp=_RAW_CSPS[csp_for(scope["path"])],
        https=scope.get("scheme") == "https",
    )
    verdict: RateVerdict | None = scope.get("state", {}).get(RATE_LIMIT_STATE)
    if verdict is not None:
        figures = [
            (name.lower().encode(), value.encode()) for name, value in verdict.headers().items()
        ]
        replaced = {name for name, _ in figures}
        kept = [(name, value) for name, value in kept if name.lower() not in replaced]
        kept.extend(figures)
    return kept


def context_headers_after_id(path: str, *, https: bool) -> list[tuple[bytes, bytes]]:
    """What `answer_headers` adds after the correlation id to an answer with none of its own
    security headers and no rate-limit figures, for answers on `path`: a fixed list, which a
    path answering many requests (the webhook fast path) can compute once."""
    added = with_context_headers([], correlation_id=b"", csp=_RAW_CSPS[csp_for(path)], https=https)
    return added[1:]  # the first is the correlation id


def begin_request(scope: Scope, raw_correlation_id: bytes | None) -> tuple[str, Any]:
    """The request's correlation id, kept in its state and bound into every log line it
    causes; returns it and what `end_request` needs to unbind it."""
    correlation_id = accepted_correlation_id(
        raw_correlation_id.decode("latin-1") if raw_correlation_id else None
    )
    scope.setdefault("state", {})["correlation_id"] = correlation_id
    # bind/reset rather than the bound_contextvars context manager: this runs per request.
    return correlation_id, structlog.contextvars.bind_contextvars(correlation_id=correlation_id)


def end_request(scope: Scope, *, status: int, seconds: float, tokens: Any) -> None:
    """The access log line and the latency metric of a finished request, then the
    correlation id unbound."""
    access_log.info(
        "request",
        method=scope["method"],
        path=scope["path"],
        status=status,
        duration_ms=round(seconds * 1000, 2),
    )
    route = getattr(scope.get("route"), "path", None)
    observe_request(method=scope["method"], route=route, status=status, seconds=seconds)
    structlog.contextvars.reset_contextvars(**tokens)


class RequestContextMiddleware:
    """Correlation id, answer headers, access log and metrics for every request (the webhook
    fast path, outside this one, does the same for the deliveries it serves, with the same
    functions)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == _RAW_CORRELATION:
                raw = value
                break
        correlation_id, tokens = begin_request(scope, raw)
        started = time.perf_counter()
        status = 500
        raw_id = correlation_id.encode()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = answer_headers(
                    list(message.get("headers", ())), scope=scope, correlation_id=raw_id
                )
            await send(message)

        app = _refusal(scope["path"], scope.get("query_string", b"")) or self.app
        try:
            await app(scope, receive, send_with_headers)
        finally:
            end_request(scope, status=status, seconds=time.perf_counter() - started, tokens=tokens)


class BodyTooLarge(HTTPException):
    """Raised while the app reads a streamed body that passes the limit; the app's handler for
    HTTP exceptions turns it into the `body_too_large` problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit}-byte limit")


class BodyLimitMiddleware:
    """Refuses request bodies over the limit with a problem+json 413: at once when
    Content-Length announces the size, and as soon as a streamed body passes it otherwise.
    Webhooks (paths under /webhooks/) have a limit of their own, vendors' payloads being larger."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, webhook_max_body_bytes: int) -> None:
        self.app = app
        self.api_limit = max_body_bytes
        self.webhook_limit = webhook_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.webhook_limit if scope["path"].startswith("/webhooks/") else self.api_limit
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        declared = b""
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared.isdigit():
            if int(declared) > limit:
                await self._refuse(scope, receive, send, limit)
                return
            if not chunked:
                # The server delivers exactly the declared length (HTTP/1.1 framing), so
                # there is nothing left to count: the common case pays one header scan.
                await self.app(scope, receive, send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Read outside the app's exception handlers (a middleware, say): answer here.
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(
            413,
            "body_too_large",
            BodyTooLarge(limit).detail,
            correlation_id=scope.get("state", {}).get("correlation_id"),
        )
        await response(scope, receive, send)


class CompressionMiddleware(GZipMiddleware):
    """Starlette's gzip, except under `uncompressed` path prefixes: webhook answers are a few
    hundred bytes of JSON for a vendor's delivery log, under the minimum size anyway, and
    the responder Starlette builds per request to find that out costs more than the answer.

    At level 1 by default, not Starlette's 9: a 33 KB page of 50 incidents takes 0.07 ms to
    compress at 1 and 0.5 ms at 9, for 4.5 KB against 3.5 KB (JSON compresses well at any
    level), and that half millisecond was a tenth of a listing request's CPU."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int,
        uncompressed: tuple[str, ...] = (),
        level: int = 1,
    ) -> None:
        super().__init__(app, minimum_size=minimum_size, compresslevel=level)
        self.uncompressed = uncompressed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.uncompressed):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class AllowlistCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, except that a response to an unlisted origin carries no CORS header at
    all: Starlette adds Allow-Credentials and Expose-Headers to every response, granted or not."""

    async def simple_response(
        self, scope: Scope, receive: Receive, send: Send, request_headers: Headers
    ) -> None:
        async def only_granted(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "access-control-allow-origin" not in headers:
                    for name in (
                        "access-control-allow-credentials",
                        "access-control-expose-headers",
                    ):
                        if name in headers:
                            del headers[name]
            await send(message)

        await super().simple_response(scope, receive, only_granted, request_headers)
