"""Webhook receivers. Public routes: each one authenticates its sender by the sender's own
mechanism (HMAC signature or token) before anything is parsed or stored.

The routes below are what OpenAPI documents and the access table lists. Plain deliveries to
them are served by `WebhookFastPath`, a pure ASGI layer outside the app's other middleware
that answers without that stack and FastAPI's routing and dependency machinery: they cost
more than storing the delivery. Both run `receive_webhook`, so they answer alike.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.access import ACCESS, PUBLIC, GuardedRoute, services
from dragon.api.deadline import DeadlineWatch, answer_cut
from dragon.api.middleware import (
    CORRELATION_HEADER,
    answer_headers,
    begin_request,
    context_headers_after_id,
    end_request,
)
from dragon.api.problems import dragon_problem
from dragon.api.rate_limits import STATE_KEY as RATE_LIMIT_STATE
from dragon.api.rate_limits import RateLimiter, enforce
from dragon.domain.errors import DragonError
from dragon.services.container import Services
from dragon.services.ingest import IngestService, Receipt

PREFIX = "/webhooks"
router = APIRouter(prefix=PREFIX, tags=["webhooks"], route_class=GuardedRoute)
_RECEIPT_DOC: dict[int | str, dict[str, Any]] = {
    202: {"description": "stored durably; processing follows (or `ignored` with a reason)"},
    200: {"description": "a redelivery: the original delivery's id and state; nothing changed"},
    401: {"description": "signature or token missing or wrong"},
}
_PONG = orjson.dumps({"status": "pong"})
CORRELATION_HEADER_RAW = CORRELATION_HEADER.encode()


def receipt_body(receipt: Receipt) -> tuple[int, bytes]:
    body: dict[str, Any] = {
        "status": receipt.status,
        "delivery_id": receipt.delivery_id,
        "event_type": receipt.event_type,
        "delivery_status": receipt.delivery_status,
    }
    if receipt.reason:
        body["reason"] = receipt.reason
    if receipt.duplicate:
        body["result"] = receipt.result
    return (200 if receipt.duplicate else 202), orjson.dumps(body)


def receipt_response(receipt: Receipt) -> Response:
    status, content = receipt_body(receipt)
    return Response(content, status_code=status, media_type="application/json")


async def receive_webhook(
    ingest: IngestService, source: str, *, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    """Authenticate (before parsing anything), then store; the status and JSON body to send."""
    ingest.authenticate(source, headers=headers, body=body)
    if source == "github" and headers.get("x-github-event") == "ping":
        return 200, _PONG
    return receipt_body(await ingest.receive(source, headers=headers, body=body))


async def _receive(source: str, request: Request, svc: Services) -> Response:
    body = await request.body()
    status, content = await receive_webhook(
        svc.ingest, source, headers=dict(request.headers), body=body
    )
    return Response(content, status_code=status, media_type="application/json")


class WebhookFastPath:
    """Serves plain `POST /webhooks/{source}` deliveries for the sources whose route the access
    table lists as public, as the outermost of the app's own middleware: the stack inside
    (correlation, body limit, start-up gate, deadline, compression, problem pages) cost more
    per delivery than storing it. This layer does for the deliveries it serves what that stack
    does, with the same functions: correlation id, answer headers, access log and metrics, the
    request deadline, the rate limit when one is configured.

    Anything out of the ordinary passes to the stack and the documented routes, which answer
    alike (both run `receive_webhook`): a process not ready yet, a body without a declared
    length or over the limit, a query with a NUL, a request with an Origin (CORS is the
    stack's). The deadline is kept by a DeadlineWatch over this path's own waits, with the
    deadline middleware's answer (the middleware runs each request as a task of its own,
    which costs more than storing a delivery). Middleware added around the app later, tracing
    and trusted proxy headers see every delivery."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        ingest: IngestService,
        sources: Iterable[str],
        routes: Iterable[BaseRoute] = (),
        max_body_bytes: int,
        is_ready: Callable[[], bool] = lambda: True,
        deadline_seconds: float | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.ingest = ingest
        self.max_body_bytes = max_body_bytes
        self.is_ready = is_ready
        self.deadline = DeadlineWatch(deadline_seconds) if deadline_seconds else None
        # Set when DRAGON_RATE_LIMITS has a `webhooks` scope: counted per sender address.
        self.limiter = limiter
        self.paths = {
            f"{PREFIX}/{source}": source
            for source in sources
            if ACCESS.get(("POST", f"{PREFIX}/{source}")) == PUBLIC
        }
        # The documented routes, put in the scope as routing would: metrics and the
        # deadline's log name the route template.
        self.routes = {
            path: route
            for route in routes
            if (path := getattr(route, "path", None)) in self.paths
            and "POST" in getattr(route, "methods", ())
        }
        # The headers every plain answer here carries after its correlation id, by scheme:
        # `answer_headers` would work them out again for each delivery.
        self.context_headers = {
            scheme: context_headers_after_id(PREFIX + "/", https=scheme == "https")
            for scheme in ("http", "https")
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else None
        source = (
            self.paths.get(path)
            if path and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if source is None:
            await self.app(scope, receive, send)
            return
        # ASGI servers give header names lower-cased, as the adapters expect.
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        if not self._plain(scope, headers):
            await self.app(scope, receive, send)
            return
        correlation_id, tokens = begin_request(
            scope,
            headers[CORRELATION_HEADER].encode("latin-1")
            if CORRELATION_HEADER in headers
            else None,
        )
        scope["route"] = self.routes.get(path)
        started = time.perf_counter()
        status = 500
        try:
            status = await self._serve(source, headers, scope, receive, send, correlation_id)
        finally:
            end_request(scope, status=status, seconds=time.perf_counter() - started, tokens=tokens)

    def _plain(self, scope: Scope, headers: dict[str, str]) -> bool:
        declared = headers.get("content-length", "")
        return (
            declared.isdigit()
            and int(declared) <= self.max_body_bytes
            and "transfer-encoding" not in headers
            and "origin" not in headers
            and b"%00" not in scope.get("query_string", b"")
            and self.is_ready()
        )

    async def _serve(
        self,
        source: str,
        headers: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
        correlation_id: str,
    ) -> int:
        """Answers the delivery; returns the status sent (0: the sender left first)."""
        raw_id = correlation_id.encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = answer_headers(
                    list(message.get("headers", ())), scope=scope, correlation_id=raw_id
                )
            await send(message)

        watched = self.deadline.enter() if self.deadline else None
        try:
            answer = await self._answer(source, headers, scope, receive, correlation_id)
        except asyncio.CancelledError:
            if not (self.deadline and self.deadline.claim(watched)):
                raise
            await answer_cut(scope, receive, send_with_headers, seconds=self.deadline.seconds)
            return 503
        finally:
            if self.deadline:
                self.deadline.leave(watched)
        if answer is None:
            return 0  # the sender left before its body arrived: nothing was stored
        if not isinstance(answer, tuple):
            await answer(scope, receive, send_with_headers)
            return answer.status_code
        status, content = answer
        own = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ]
        fixed = self.context_headers.get(scope.get("scheme", "http"))
        if fixed is None or scope["state"].get(RATE_LIMIT_STATE) is not None:
            sent = answer_headers(own, scope=scope, correlation_id=raw_id)
        else:
            sent = [*own, (CORRELATION_HEADER_RAW, raw_id), *fixed]
        await send({"type": "http.response.start", "status": status, "headers": sent})
        await send({"type": "http.response.body", "body": content})
        return status

    async def _answer(
        self,
        source: str,
        headers: dict[str, str],
        scope: Scope,
        receive: Receive,
        correlation_id: str,
    ) -> tuple[int, bytes] | Response | None:
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            if self.limiter is not None:
                client = scope.get("client")
                await enforce(
                    self.limiter,
                    scope="webhooks",
                    key=f"address:{client[0] if client else 'unknown'}",
                    state=scope["state"],
                )
            return await receive_webhook(
                self.ingest,
                source,
                headers=headers,
                body=chunks[0] if len(chunks) == 1 else b"".join(chunks),
            )
        except DragonError as exc:
            return dragon_problem(exc, correlation_id=correlation_id)


@router.post("/github", status_code=202, responses=_RECEIPT_DOC)
async def github_webhook(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    """GitHub: `X-Hub-Signature-256` is required; deduplicated on `X-GitHub-Delivery`."""
    return await _receive("github", request, svc)


@router.post("/gitlab", status_code=202, responses=_RECEIPT_DOC)
async def gitlab_webhook(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    """GitLab Pipeline and Job hooks: `X-Gitlab-Token`; deduplicated on `X-Gitlab-Event-UUID`."""
    return await _receive("gitlab", request, svc)


@router.post("/jenkins", status_code=202, responses=_RECEIPT_DOC)
async def jenkins_webhook(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    """Jenkins Notification plugin: HMAC signature or bearer token; deduplicated on job, build
    number and phase."""
    return await _receive("jenkins", request, svc)


@router.post("/alertmanager", status_code=202, responses=_RECEIPT_DOC)
async def alertmanager_webhook(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> Response:
    """Prometheus Alertmanager webhook (version 4), bearer token; one signal per alert."""
    return await _receive("alertmanager", request, svc)
