"""Idempotency keys: in Redis (shared by every replica) or in this process's memory.

A key's record is JSON: the request's fingerprint, and once the first use has answered, the
answer (status, headers, base64 body). A first use claims the key with SET NX and a short lease,
so a replica that dies mid-request does not hold the key for a day; the answer is stored with
the full time to live.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis

from dragon.domain.ports import IdempotencyRecord, StoredResponse
from dragon.store.redis_client import RedisGuard


def encode(record: IdempotencyRecord) -> bytes:
    body: dict[str, Any] = {"fingerprint": record.fingerprint}
    if record.response is not None:
        body["status"] = record.response.status
        body["headers"] = [list(pair) for pair in record.response.headers]
        body["body"] = base64.b64encode(record.response.body).decode("ascii")
    return orjson.dumps(body)


def decode(raw: bytes | str) -> IdempotencyRecord:
    data = orjson.loads(raw)
    response = None
    if "status" in data:
        response = StoredResponse(
            status=int(data["status"]),
            headers=tuple((str(k), str(v)) for k, v in data["headers"]),
            body=base64.b64decode(data["body"]),
        )
    return IdempotencyRecord(fingerprint=str(data["fingerprint"]), response=response)


class RedisIdempotencyStore:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def claim(
        self, key: str, *, fingerprint: str, lease_seconds: float
    ) -> IdempotencyRecord | None:
        name = self._prefix + key
        pending = encode(IdempotencyRecord(fingerprint=fingerprint, response=None))
        lease_ms = max(int(lease_seconds * 1000), 1)
        # Two tries: the record found by the losing SET may lapse before it is read.
        for _ in range(2):
            if await self._redis.set(name, pending, nx=True, px=lease_ms):
                return None
            raw = await self._redis.get(name)
            if raw is not None:
                return decode(raw)
        return None

    async def complete(self, key: str, *, record: IdempotencyRecord, ttl_seconds: int) -> None:
        await self._redis.set(self._prefix + key, encode(record), ex=ttl_seconds)

    async def release(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)


class MemoryIdempotencyStore:
    """One process's keys: enough for the embedded mode, and the fallback while Redis is down."""

    _SWEEP_EVERY = 60.0

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._now = monotonic
        self._records: dict[str, tuple[float, IdempotencyRecord]] = {}
        self._swept = monotonic()

    def _sweep(self, now: float) -> None:
        if now - self._swept < self._SWEEP_EVERY:
            return
        self._swept = now
        for key in [k for k, (expires, _) in self._records.items() if expires <= now]:
            del self._records[key]

    async def claim(
        self, key: str, *, fingerprint: str, lease_seconds: float
    ) -> IdempotencyRecord | None:
        now = self._now()
        self._sweep(now)
        found = self._records.get(key)
        if found is not None and found[0] > now:
            return found[1]
        self._records[key] = (
            now + lease_seconds,
            IdempotencyRecord(fingerprint=fingerprint, response=None),
        )
        return None

    async def complete(self, key: str, *, record: IdempotencyRecord, ttl_seconds: int) -> None:
        self._records[key] = (self._now() + ttl_seconds, record)

    async def release(self, key: str) -> None:
        self._records.pop(key, None)


class FallbackIdempotencyStore:
    """Redis through the guard, this process's memory while Redis is unusable."""

    def __init__(
        self, primary: RedisIdempotencyStore, *, fallback: MemoryIdempotencyStore, guard: RedisGuard
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._guard = guard

    async def claim(
        self, key: str, *, fingerprint: str, lease_seconds: float
    ) -> IdempotencyRecord | None:
        return await self._guard.run(
            lambda: self._primary.claim(key, fingerprint=fingerprint, lease_seconds=lease_seconds),
            lambda: self._fallback.claim(key, fingerprint=fingerprint, lease_seconds=lease_seconds),
        )

    async def complete(self, key: str, *, record: IdempotencyRecord, ttl_seconds: int) -> None:
        await self._guard.run(
            lambda: self._primary.complete(key, record=record, ttl_seconds=ttl_seconds),
            lambda: self._fallback.complete(key, record=record, ttl_seconds=ttl_seconds),
        )

    async def release(self, key: str) -> None:
        await self._guard.run(
            lambda: self._primary.release(key), lambda: self._fallback.release(key)
        )
