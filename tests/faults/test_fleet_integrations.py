"""Faults at the integrations, in production mode: two `dragon serve` replicas and two
`dragon worker` processes on PostgreSQL and a private Redis, peers on 127.0.0.1.

- kill -9 of the worker in the middle of a run (its call to GitHub made, the answer not back):
  the other worker takes the run over when its lease runs out and finishes it; the action
  happened once, as the GitHub stand-in counts.
- an LLM endpoint that accepts connections and never answers: the workers' `llm` breakers open
  (shown by the API replicas' /readyz and /metrics through the fleet's breaker board), webhooks
  are still accepted and every incident still gets its decision (the built-in analyzer stands
  in) and its notification, and while the breakers are open no call reaches the hung endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dragon.domain.enums import Role
from dragon.services.triage import TriageSettings
from tests.fake_github import FakeGitHub
from tests.faults.conftest import PrivateRedis, StartWorkers
from tests.integration.test_ingest_processes import (
    Launch,
    create_admin_key,
    dragon_env,
    signed,
    wait_until_nothing_pending,
    workflow_run_failure,
)
from tests.notify_setup import WEBHOOK_SECRET
from tests.peers import HttpPeer, running_peer
from tests.support.api_keys import issue_keys

pytestmark = pytest.mark.one_pass(
    "postgresql", "a fleet of replicas and workers is the production topology, on PostgreSQL"
)

REPO = "acme/api"
COMMENTS = rf"/repos/{REPO}/issues/7/comments"


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def key_for(role: str, env: dict[str, str]) -> dict[str, str]:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    keys = await issue_keys(env["DRAGON_DATABASE_URL"], {name: Role(role)}, prefix="fleet")
    return {"Authorization": f"Bearer {keys[name]}"}


async def test_kill_9_of_the_worker_running_an_action_leaves_it_done_once_by_the_other(
    database_url: str,
    tmp_path: Path,
    launch: Launch,
    private_redis: PrivateRedis,
    *,
    workers: StartWorkers,
    github: FakeGitHub,
) -> None:
    env = dragon_env(
        database_url,
        redis_url=private_redis.url,
        worker_enabled="false",
        worker_poll_seconds="0.2",
        github_token=github.state.token,
        github_api_url=github.url,
        run_lease_seconds="3",
        http_timeout_seconds="30",
    )
    admin = await create_admin_key(env)
    developer = await key_for("developer", env)
    approvers = [await key_for("approver", env) for _ in range(2)]
    replica_a, replica_b = await launch(env, "api-a"), await launch(env, "api-b")
    # GitHub takes the comment at once but answers only after 20 s: its worker dies waiting.
    github.state.stall[f"POST {COMMENTS}"] = 20.0
    processes = await workers(env, 2)

    async with (
        httpx.AsyncClient(base_url=replica_a.url, timeout=10) as on_a,
        httpx.AsyncClient(base_url=replica_b.url, timeout=10) as on_b,
    ):
        proposed = await on_a.post(
            "/api/v1/decisions",
            json={
                "action": "comment",
                "title": f"comment on {REPO}",
                "repo": REPO,
                "environment": "production",
                "params": {"body": "CI failed", "pull_number": 7},
            },
            headers=developer,
        )
        assert proposed.status_code == 201, proposed.text
        decision = proposed.json()
        for approver in approvers[: decision["policy"]["approvals_required"]]:
            verdict = await on_b.post(
                f"/api/v1/decisions/{decision['id']}/approve",
                json={"justification": "a comment is harmless"},
                headers=approver,
            )
            assert verdict.status_code == 200, verdict.text

        async def posted() -> bool:
            return github.state.count("POST", COMMENTS) == 1

        await eventually(posted, within=60, what="a worker's comment to reach GitHub")
        running = [
            (number, process)
            for number, process in enumerate(processes)
            if '"run_started"' in (tmp_path / f"worker-{number}.log").read_text()
        ]
        assert len(running) == 1, "exactly one worker started the run"
        (doomed_number, doomed), (survivor,) = (
            running[0],
            [p for p in processes if p is not running[0][1]],
        )
        doomed.send_signal(signal.SIGKILL)
        assert await doomed.wait() == -signal.SIGKILL
        github.state.stall.clear()

        async def run_of_decision() -> dict[str, Any]:
            listed = await on_b.get(
                "/api/v1/runs", params={"decision_id": decision["id"]}, headers=admin
            )
            (summary,) = listed.json()["items"]
            found: dict[str, Any] = (
                await on_b.get(f"/api/v1/runs/{summary['id']}", headers=admin)
            ).json()
            return found

        async def finished() -> bool:
            return bool((await run_of_decision())["status"] == "succeeded")

        await eventually(finished, within=60, what="the other worker to finish the run")
        run = await run_of_decision()
        final = (await on_a.get(f"/api/v1/decisions/{decision['id']}", headers=admin)).json()
        chain = (await on_a.get("/api/v1/audit/verify", headers=admin)).json()

    assert survivor.returncode is None  # the survivor did it, without a restart
    assert doomed_number in (0, 1)
    assert github.state.count("POST", COMMENTS) == 1  # the action happened once
    assert len(github.state.comments[f"{REPO}#issues/7"]) == 1
    assert run["attempts"] == 2
    steps = [(entry["step"], entry["status"]) for entry in run["log"]]
    assert ("recovered", "ok") in steps
    assert ("comment", "reused") in steps
    assert final["status"] == "succeeded"
    assert chain["status"] == "ok"


class HungPeer:
    """A loopback server that accepts every connection, reads what is sent and never answers:
    an LLM endpoint wedged behind a load balancer. Counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                self.requests += chunk.count(b"POST /v1/chat/completions")
        self._writers.discard(writer)


@pytest.fixture
async def hung_llm() -> AsyncIterator[HungPeer]:
    peer = HungPeer()
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
def notified() -> Iterator[HttpPeer]:
    yield from running_peer()


async def send_failures(urls: list[str], *, first: int, count: int) -> list[int]:
    """`count` failed workflow runs of distinct workflows (one incident each), spread over
    `urls`; returns the answers' status codes."""
    statuses = []
    async with httpx.AsyncClient(timeout=10) as http:
        for number in range(first, first + count):
            body = workflow_run_failure(
                run_id=70_000 + number, attempt=1, workflow=f"hung-{number}", branch="main"
            )
            answer = await http.post(
                f"{urls[number % len(urls)]}/webhooks/github",
                content=body,
                headers=signed(body, str(uuid.uuid4())),
            )
            statuses.append(answer.status_code)
    return statuses


async def test_a_hung_llm_endpoint_opens_its_breaker_and_everything_else_keeps_going(
    database_url: str,
    tmp_path: Path,
    launch: Launch,
    private_redis: PrivateRedis,
    *,
    workers: StartWorkers,
    hung_llm: HungPeer,
    notified: HttpPeer,
) -> None:
    notifications = tmp_path / "notifications.yaml"
    document = {
        "channels": {
            "hook": {"type": "webhook", "url": f"{notified.url}/hook", "secret": WEBHOOK_SECRET}
        },
        "routes": [{"name": "default", "default": True, "channels": ["hook"]}],
    }
    notifications.write_text(yaml.safe_dump(document), encoding="utf-8")
    env = dragon_env(
        database_url,
        redis_url=private_redis.url,
        worker_enabled="false",
        worker_poll_seconds="0.2",
        triage_enabled="true",
        triage_poll_seconds="0.2",
        notifications_file=str(notifications),
        notification_poll_seconds="0.2",
        llm_base_url=hung_llm.url,
        llm_api_key="sk-fault-test-0123456789abcdef0123456789",
        llm_timeout_seconds="1",
        llm_max_retries="0",
        llm_breaker_threshold="1",
        llm_breaker_reset_seconds="300",
        breaker_report_seconds="0.3",
        readiness_cache_seconds="0",
    )
    admin = await create_admin_key(env)
    replicas = [await launch(env, "api-a"), await launch(env, "api-b")]
    urls = [r.url for r in replicas]
    await workers(env, 2)

    async with httpx.AsyncClient(base_url=urls[0], timeout=10) as http:

        async def every_incident_decided(expected: int) -> bool:
            incidents = (await http.get("/api/v1/incidents?limit=100", headers=admin)).json()
            decisions = (await http.get("/api/v1/decisions?limit=100", headers=admin)).json()
            return len(incidents["items"]) == expected == len(decisions["items"])

        async def llm_open() -> bool:
            ready = (await http.get("/readyz")).json()
            return bool(ready["breakers"].get("llm") == "open")

        first = await send_failures(urls, first=0, count=6)
        await eventually(lambda: every_incident_decided(6), within=60, what="6 decisions")
        await eventually(llm_open, within=10, what="the llm breaker to show open")
        ready = (await http.get("/readyz")).json()
        metrics = (await http.get("/metrics")).text
        open_workers = sum(
            1
            for process, states in ready["fleet_breakers"].items()
            if process.startswith("worker@") and states.get("llm") == "open"
        )
        calls_while_open = hung_llm.requests

        second = await send_failures(urls, first=6, count=6)
        await eventually(lambda: every_incident_decided(12), within=60, what="12 decisions")
        await wait_until_nothing_pending(http, admin)

        async def everyone_notified() -> bool:
            return len([r for r in notified.received if r.path == "/hook"]) >= 12

        await eventually(everyone_notified, within=30, what="a notification per incident")
        decisions = (await http.get("/api/v1/decisions?limit=100", headers=admin)).json()

    assert set(first + second) == {202}  # webhooks accepted throughout
    assert ready["status"] == "ok"
    assert 'dragon_breaker_state{breaker="llm"} 2.0' in metrics
    assert open_workers >= 1
    # Each worker called the hung endpoint until its breaker opened (threshold 1): the triages
    # already in flight when the first call timed out (a worker runs a few at once), no more.
    assert 1 <= calls_while_open <= 2 * TriageSettings().concurrency
    assert hung_llm.requests - calls_while_open <= (2 - open_workers) * TriageSettings().concurrency
    fallbacks = [d["provenance"].get("fallback_reason") for d in decisions["items"]]
    assert set(fallbacks) <= {"timeout", "circuit_open"}
    assert "circuit_open" in fallbacks
