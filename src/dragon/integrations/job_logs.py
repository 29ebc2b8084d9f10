"""Fetching a failed job's log from its CI vendor, for triage: the tail only, bounded in bytes
and in time, one breaker per vendor. A log that cannot be fetched is not an error for triage:
the signal's own excerpt is used instead.

    JobLogs.job_log(signal) ── vendor fetcher for signal.source (github_logs, gitlab_logs,
                               jenkins_logs) ── breaker open? ─► None
                                  │ read_tail: GET with `Range: bytes=-N`; a 200 is streamed
                                  │ and only its last N bytes kept; at most 4N read; timeout
                                  ├─ 5xx, 429, timeout, network: breaker.failed(), None
                                  └─ 401/403/404/410: None (the vendor is fine)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from dragon.domain.breaker import CircuitBreaker
from dragon.domain.entities import Signal

log = structlog.get_logger("dragon.triage")


class LogUnavailable(Exception):
    """`reason` is a short code, never a URL with credentials; `counts` says whether the
    vendor is failing (for its breaker) or merely has no log for us."""

    def __init__(self, reason: str, *, counts: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.counts = counts


@dataclass(frozen=True, kw_only=True)
class TailLimits:
    max_bytes: int = 2 * 1024 * 1024
    timeout: float = 10.0

    @property
    def read_cap(self) -> int:
        return self.max_bytes * 4


async def read_tail(
    client: httpx.AsyncClient,
    url: str,
    *,
    limits: TailLimits,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
) -> str:
    """The last `limits.max_bytes` of the document at `url`, decoded leniently."""
    try:
        async with asyncio.timeout(limits.timeout):
            request_headers = {**(headers or {}), "Range": f"bytes=-{limits.max_bytes}"}
            async with client.stream("GET", url, headers=request_headers, auth=auth) as response:
                status = response.status_code
                if status == 416:  # nothing to read: an empty log
                    return ""
                if status not in (200, 206):
                    raise LogUnavailable(f"http_{status}", counts=status >= 500 or status == 429)
                tail, total = bytearray(), 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    tail += chunk
                    if len(tail) > limits.max_bytes:
                        del tail[: len(tail) - limits.max_bytes]
                    if total >= limits.read_cap:
                        break  # a server ignoring Range on a huge log: stop reading
    except TimeoutError:
        raise LogUnavailable("timeout", counts=True) from None
    except httpx.HTTPError as exc:
        raise LogUnavailable(f"network_{type(exc).__name__}", counts=True) from None
    text = tail.decode("utf-8", errors="replace")
    if len(tail) >= limits.max_bytes and "\n" in text:
        text = text.split("\n", 1)[1]  # drop the partial first line of a cut log
    return text


async def read_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    limits: TailLimits,
    headers: Mapping[str, str],
    params: Mapping[str, str],
) -> Any:
    """A vendor's JSON listing (which job failed), with the same failure classes as read_tail:
    network errors, 429 and 5xx count against the vendor's breaker, other statuses do not."""
    try:
        response = await client.get(url, params=params, headers=headers, timeout=limits.timeout)
    except httpx.HTTPError as exc:
        raise LogUnavailable(f"network_{type(exc).__name__}", counts=True) from None
    if response.status_code != 200:
        status = response.status_code
        raise LogUnavailable(f"http_{status}", counts=status >= 500 or status == 429)
    try:
        return response.json()
    except ValueError:
        raise LogUnavailable("response_not_json", counts=True) from None


class VendorLogFetcher(Protocol):
    async def fetch(self, signal: Signal) -> str | None: ...


class JobLogs:
    """The JobLogSource triage uses: picks the vendor's fetcher and guards it with its breaker."""

    def __init__(self, fetchers: Mapping[str, tuple[VendorLogFetcher, CircuitBreaker]]) -> None:
        self._fetchers = dict(fetchers)

    async def job_log(self, signal: Signal) -> str | None:
        found = self._fetchers.get(signal.source)
        if found is None:
            return None
        fetcher, breaker = found
        if not breaker.allow():
            return None
        try:
            text = await fetcher.fetch(signal)
        except LogUnavailable as unavailable:
            if unavailable.counts:
                breaker.failed()
            else:
                breaker.succeeded()
            log.warning(
                "job_log_unavailable",
                source=signal.source,
                signal_id=signal.id,
                reason=unavailable.reason,
            )
            return None
        breaker.succeeded()
        return text
