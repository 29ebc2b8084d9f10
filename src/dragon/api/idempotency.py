"""`Idempotency-Key` on creating POSTs: a retried request gets the first one's answer.

Same key and same request → the stored answer (with `Idempotent-Replayed: true`); same key,
another body → 422 `idempotency_key_reused`; a key whose first use is still running → the
repeat waits for its answer, then 409 `idempotency_key_in_progress` if none comes in time.
Keys are scoped to the credentials that sent them (a hash of them, never the credentials), so
one caller cannot read another's answers. Answers that depend on the moment rather than on the
request (401, 403, 409, 429, 5xx) are not kept: the key is released and a retry runs afresh.

Webhooks and events are left out: the inbox deduplicates them durably, on the sender's delivery
id or on the Idempotency-Key itself (a repeat answers 200 with the original delivery). So is
`POST /api/v1/keys`: its answer holds a new API key's secret, which is never kept anywhere.
Requests without the header pay one header scan and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.problems import problem
from dragon.domain.ports import IdempotencyRecord, IdempotencyStore, StoredResponse

HEADER = b"idempotency-key"
REPLAYED = "idempotent-replayed"
_MAX_KEY = 255
_MAX_STORED_BODY = 1024 * 1024
_NOT_KEPT = frozenset({401, 403, 408, 409, 425, 429})
_SKIPPED_HEADERS = frozenset({"content-length", "date", "x-correlation-id", REPLAYED})
_POLL_SECONDS = 0.05
# Routes whose deliveries the inbox deduplicates itself, and routes whose answer shows a secret
# once (an API key): that answer must not be kept in Redis or memory for a day.
_EXEMPT_ROUTES = (
    "/webhooks/",
    "/api/v1/events",
    "/api/ci/event",
    "/api/observability/alert",
    "/api/v1/keys",
)


def _keepable(status: int) -> bool:
    return status < 500 and status not in _NOT_KEPT


def _valid_key(raw: bytes) -> bool:
    return 0 < len(raw) <= _MAX_KEY and all(0x21 <= b <= 0x7E for b in raw)


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        store: IdempotencyStore,
        ttl_seconds: int,
        lease_seconds: float,
        wait_seconds: float = 10.0,
    ) -> None:
        self.app = app
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_key = None
        credential = b""
        for name, value in scope["headers"]:
            if name == HEADER:
                raw_key = value
            elif name in (b"authorization", b"x-api-key"):
                credential += value
        if raw_key is None or scope["path"].startswith(_EXEMPT_ROUTES):
            await self.app(scope, receive, send)
            return
        correlation_id = scope.get("state", {}).get("correlation_id")
        if not _valid_key(raw_key):
            await problem(
                400,
                "idempotency_key_invalid",
                f"Idempotency-Key must be 1 to {_MAX_KEY} visible ASCII characters",
                correlation_id=correlation_id,
            )(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        key = hashlib.sha256(
            b"\0".join([hashlib.sha256(credential).digest(), scope["path"].encode(), raw_key])
        ).hexdigest()
        fingerprint = hashlib.sha256(b"\0".join([scope.get("query_string", b""), body])).hexdigest()
        record = await self._claim_or_wait(key, fingerprint)
        if record is not None:
            await self._answer_repeat(
                record, fingerprint=fingerprint, scope=scope, receive=receive, send=send
            )
            return
        await self._first_use(
            key, fingerprint=fingerprint, body=body, scope=scope, receive=receive, send=send
        )

    async def _claim_or_wait(self, key: str, fingerprint: str) -> IdempotencyRecord | None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait_seconds
        while True:
            record = await self.store.claim(
                key, fingerprint=fingerprint, lease_seconds=self.lease_seconds
            )
            if record is None or record.response is not None:
                return record
            if record.fingerprint != fingerprint or loop.time() >= give_up:
                return record
            await asyncio.sleep(_POLL_SECONDS)

    async def _answer_repeat(
        self,
        record: IdempotencyRecord,
        *,
        fingerprint: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        correlation_id = scope.get("state", {}).get("correlation_id")
        if record.fingerprint != fingerprint:
            response = problem(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key",
                correlation_id=correlation_id,
            )
        elif record.response is None:
            response = problem(
                409,
                "idempotency_key_in_progress",
                "the first request with this Idempotency-Key is still running; retry shortly",
                correlation_id=correlation_id,
                headers={"Retry-After": "1"},
            )
        else:
            stored = record.response
            await send(
                {
                    "type": "http.response.start",
                    "status": stored.status,
                    "headers": [
                        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers),
                        (b"content-length", str(len(stored.body)).encode()),
                        (REPLAYED.encode(), b"true"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": stored.body})
            return
        await response(scope, receive, send)

    async def _first_use(
        self,
        key: str,
        *,
        fingerprint: str,
        body: bytes,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        size = 0

        async def capturing_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers.extend(
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in _SKIPPED_HEADERS
                )
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= _MAX_STORED_BODY:
                    chunks.append(chunk)
            await send(message)

        try:
            await self.app(scope, replay_receive, capturing_send)
        except BaseException:
            await self.store.release(key)
            raise
        if _keepable(status) and size <= _MAX_STORED_BODY:
            stored = StoredResponse(status=status, headers=tuple(headers), body=b"".join(chunks))
            await self.store.complete(
                key,
                record=IdempotencyRecord(fingerprint=fingerprint, response=stored),
                ttl_seconds=self.ttl_seconds,
            )
        else:
            await self.store.release(key)


async def _read_body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)
