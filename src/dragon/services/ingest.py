"""The front door: authenticate a delivery, store it durably and deduplicated, then answer.

Nothing is acknowledged before it is committed. Processing happens later, in the worker
(services.processing); a redelivery finds its original and changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dragon.domain.clock import Clock
from dragon.domain.entities import Delivery
from dragon.domain.enums import DeliveryStatus
from dragon.domain.errors import Conflict, Malformed, NotFound, ValidationFailed
from dragon.domain.ids import new_id
from dragon.domain.ports import (
    DeliveryInbox,
    DeliveryQuery,
    NewDelivery,
    UnitOfWorkFactory,
    WebhookAdapter,
)
from dragon.domain.signals import NormalizeOptions
from dragon.services.audit_log import record
from dragon.services.context import Caller
from dragon.traces import current_traceparent

# Headers worth keeping with a delivery: enough to re-normalize it, nothing secret.
_KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "x-gitlab-instance",
)
# A delivery key or event type is stored as text and shown in the console: a control character
# in one (a header or a Jenkins job name) is no vendor's, and PostgreSQL refuses NUL in text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_KEY = 200  # deliveries.delivery_key


@dataclass(frozen=True)
class Receipt:
    status: str  # accepted | duplicate | ignored
    delivery_id: str
    event_type: str
    duplicate: bool = False
    delivery_status: str = DeliveryStatus.PENDING.value
    result: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"the body is not valid JSON: {exc}", code="json_invalid") from None


class IngestService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        inbox: DeliveryInbox,
        adapters: Mapping[str, WebhookAdapter],
        secrets: Mapping[str, Sequence[str]],
        options: NormalizeOptions,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._inbox = inbox
        self._adapters = adapters
        self._secrets = secrets
        self._options = options
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []
        self._last_arrival = -float("inf")  # time.monotonic() of the latest delivery

    async def lull(self, *, quiet: float, longest: float) -> bool:
        """Wait until no delivery has arrived for `quiet` seconds (True), or `longest` passed
        with deliveries still arriving (False): how work that shares this process with the
        accept path gives acceptance the priority."""
        started = time.monotonic()
        while True:
            now = time.monotonic()
            idle = now - self._last_arrival
            if idle >= quiet:
                return True
            if now - started >= longest:
                return False
            await asyncio.sleep(min(quiet - idle, longest - (now - started)))

    def on_accepted(self, listener: Callable[[], None]) -> None:
        """Called after each newly stored pending delivery (the embedded worker wakes up)."""
        self._listeners.append(listener)

    async def close(self) -> None:
        await self._inbox.close()

    @property
    def sources(self) -> list[str]:
        """The webhook sources with a receiver."""
        return list(self._adapters)

    def adapter(self, source: str) -> WebhookAdapter:
        try:
            return self._adapters[source]
        except KeyError:
            raise NotFound(f"no webhook receiver for {source!r}", code="source_unknown") from None

    def authenticate(self, source: str, *, headers: Mapping[str, str], body: bytes) -> None:
        self.adapter(source).authenticate(
            headers=headers, body=body, secrets=self._secrets.get(source, ())
        )

    async def receive(self, source: str, *, headers: Mapping[str, str], body: bytes) -> Receipt:
        """Store an authenticated webhook delivery. The caller authenticated it already.

        Only what the answer needs happens here: the JSON is parsed (a malformed body is a
        400), the delivery key found and the event classified. Normalization into signals,
        with its checks of every field, runs in the worker: it costs more than all the rest
        of accepting. A payload it refuses fails there like any processing failure: retried
        with backoff, then dead with the reason, for an admin to see."""
        adapter = self.adapter(source)
        payload = parse_json(body)
        key = adapter.delivery_key(headers=headers, payload=payload, body=body)
        meaning = adapter.classify(headers=headers, payload=payload)
        if _CONTROL.search(key) or _CONTROL.search(meaning.event_type):
            raise Malformed(
                "the delivery key or event type holds a control character",
                code="delivery_header_invalid",
            )
        kept = {name: headers[name] for name in _KEPT_HEADERS if name in headers}
        return await self._store(
            source=source,
            key=key,
            event_type=meaning.event_type,
            headers=kept,
            body=body,
            ignored=meaning.ignored,
        )

    async def submit(self, caller: Caller, *, event: Mapping[str, Any], key: str | None) -> Receipt:
        """Dragon's own normalized event (POST /api/v1/events); `key` (the Idempotency-Key)
        deduplicates, by the rule of every creating POST: scoped to the caller, and a key
        repeated with another event is a 422, never that event dropped as a duplicate."""
        body = orjson.dumps(dict(event))
        receipt = await self._store(
            source="api",
            key=caller_key(caller.principal.id, key) if key else new_id("evt", self._clock()),
            event_type=str(event.get("kind", "event")),
            headers={"x-dragon-principal": caller.principal.id},
            body=body,
            ignored=None,
        )
        if receipt.duplicate and (await self.get(receipt.delivery_id)).body != body:
            raise ValidationFailed(
                "this Idempotency-Key was used for a different event; use a new key",
                code="idempotency_key_reused",
            )
        return receipt

    async def _store(
        self,
        *,
        source: str,
        key: str,
        event_type: str,
        headers: dict[str, str],
        body: bytes,
        ignored: str | None,
    ) -> Receipt:
        self._last_arrival = time.monotonic()
        now = self._clock()
        parent = current_traceparent()  # None unless tracing is on
        if parent is not None:
            headers = {**headers, "traceparent": parent}
        delivery = NewDelivery(
            id=new_id("dlv", now),
            source=source,
            delivery_key=key[:200],
            event_type=event_type[:64],
            body=body,
            headers=headers,
            received_at=now,
            ignored=ignored,
        )
        existing = await self._inbox.add(delivery)
        if existing is not None:
            return Receipt(
                status="duplicate",
                delivery_id=existing.id,
                event_type=existing.event_type,
                duplicate=True,
                delivery_status=existing.status.value,
                result=existing.result,
            )
        if ignored:
            return Receipt(
                status="ignored",
                delivery_id=delivery.id,
                event_type=delivery.event_type,
                delivery_status=DeliveryStatus.IGNORED.value,
                reason=ignored,
            )
        for listener in self._listeners:
            listener()
        return Receipt(status="accepted", delivery_id=delivery.id, event_type=delivery.event_type)

    async def get(self, delivery_id: str) -> Delivery:
        async with self._uow(write=False) as uow:
            delivery = await uow.deliveries.get(delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id}", code="delivery_not_found")
        return delivery

    async def find(self, query: DeliveryQuery) -> tuple[list[Delivery], str | None]:
        async with self._uow(write=False) as uow:
            return await uow.deliveries.find(query)

    async def retry(self, caller: Caller, delivery_id: str) -> Delivery:
        """Send a dead (or failed) delivery back to the worker, attempts reset; audited."""
        now = self._clock()
        async with self._uow() as uow:
            delivery = await uow.deliveries.get(delivery_id, for_update=True)
            if delivery is None:
                raise NotFound(f"no delivery {delivery_id}", code="delivery_not_found")
            if delivery.status is not DeliveryStatus.DEAD:
                raise Conflict(
                    f"delivery {delivery_id} is {delivery.status}; only dead ones are retried",
                    code="delivery_not_dead",
                )
            delivery.status = DeliveryStatus.PENDING
            delivery.attempts = 0
            delivery.next_attempt_at = now
            # A job engine runs it at once (committed with this change or not at all).
            await uow.deliveries.schedule([delivery.id])
            await record(
                uow,
                caller,
                action="delivery.retried",
                target_type="delivery",
                target_id=delivery.id,
                now=now,
                details={"source": delivery.source, "last_error": delivery.last_error},
            )
            await uow.commit()
        for listener in self._listeners:
            listener()
        return delivery


def caller_key(principal_id: str, key: str) -> str:
    """An event's inbox key: the caller's Idempotency-Key under the caller's id, so that two
    callers' keys never meet; at most 200 characters, a longer one ending in its SHA-256."""
    scoped = f"{principal_id}:{key}"
    if len(scoped) <= _MAX_KEY:
        return scoped
    digest = hashlib.sha256(scoped.encode()).hexdigest()
    return f"{scoped[: _MAX_KEY - len(digest) - 1]}#{digest}"


async def wait_for(event: asyncio.Event, seconds: float) -> None:
    """Sleep until `event` is set or `seconds` pass, then clear it."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        pass
    event.clear()
