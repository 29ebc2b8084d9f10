"""An open-loop sender: signed GitHub `workflow_run` failures at a fixed rate, whatever the
server's answers take (wrk2's constant throughput; Debian's wrk has no -R).

Every delivery is a different failed run on its own branch and commit, so each one opens a
new incident (linked to no other) and goes the whole way: incident → triage decision →
notification queued. Latency is taken
from the moment a request was *due*, not sent, so a stalled server cannot hide its backlog
(coordinated omission). Raw HTTP/1.1 keep-alive over asyncio streams keeps the sender's own
CPU small beside the server's on a shared machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from github_bodies import workflow_run_failure

RUN_MARK = "987654321012"  # replaced per delivery by 1 + eleven digits: same width, valid JSON
BRANCH_MARK = "bench-e2e-0000000000"
SHA_MARK = "e2e0" * 10  # forty hex-ish characters, a commit of its own per delivery
MAX_CONNECTIONS = 512


def delivery_template(*, body_bytes: int = 10 * 1024) -> bytes:
    """The published workflow_run failure example, about `body_bytes` long, with markers
    where each delivery puts its own run id and branch."""

    def mark(payload: dict[str, Any]) -> None:
        run = payload["workflow_run"]
        run["id"] = int(RUN_MARK)
        run["head_branch"] = BRANCH_MARK
        run["head_sha"] = SHA_MARK
        run["head_commit"]["id"] = SHA_MARK

    return workflow_run_failure(body_bytes, edit=mark)


@dataclass
class SendResult:
    """What one paced run saw: latencies (ms, from when each request was due) and failures."""

    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    non_2xx: int = 0
    seconds: float = 0.0
    peak_connections: int = 0


class PacedSender:
    def __init__(self, *, port: int, secret: str, prefix: str) -> None:
        self._port = port
        self._secret = secret.encode()
        self._prefix = prefix
        self._template = delivery_template()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._open = 0

    def request(self, number: int) -> bytes:
        body = (
            self._template.replace(RUN_MARK.encode(), f"1{number:011d}".encode())
            .replace(BRANCH_MARK.encode(), f"bench-e2e-{number:010d}".encode())
            .replace(SHA_MARK.encode(), f"{number:040x}".encode())
        )
        signature = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        head = (
            "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nX-GitHub-Event: workflow_run\r\n"
            f"X-GitHub-Delivery: {self._prefix}-{number}\r\n"
            f"X-Hub-Signature-256: sha256={signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def _exchange(self, payload: bytes) -> int:
        if self._idle:
            try:
                return await self._send(*self._idle.pop(), payload)
            except (ConnectionError, asyncio.IncompleteReadError):
                # The server closes keep-alive connections idle past its timeout; a request
                # written into one that was closing is sent again on a new one, as HTTP
                # clients do (a redelivery is harmless: the delivery key dedupes it).
                pass
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        self._open += 1
        return await self._send(reader, writer, payload)

    async def _send(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
    ) -> int:
        try:
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            self._open -= 1
            raise
        self._idle.append((reader, writer))
        return status

    async def run(self, *, rate: float, seconds: float, first: int = 0) -> SendResult:
        """Send rate * seconds deliveries numbered from `first`, each due at its own instant."""
        result = SendResult()
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(MAX_CONNECTIONS)
        count = int(rate * seconds)

        async def one(number: int, due: float) -> None:
            async with slots:
                try:
                    status = await self._exchange(self.request(number))
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.errors += 1
                    return
                result.latencies_ms.append((loop.time() - due) * 1000)
                if not 200 <= status < 300:
                    result.non_2xx += 1
                result.peak_connections = max(result.peak_connections, self._open)

        started = loop.time() + 0.05
        tasks = []
        for i in range(count):
            due = started + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(first + i, due)))
        await asyncio.gather(*tasks)
        result.sent = count
        result.seconds = loop.time() - started
        return result

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
