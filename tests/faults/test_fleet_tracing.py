"""One trace across processes: a `dragon serve` replica accepts a webhook, a separate
`dragon worker` processes it, triages the incident (asking the LLM), runs the decision against
GitHub; both export over OTLP/HTTP to one receiver on loopback, and the spans link webhook →
processing → triage → run → outbound call although the worker never saw the request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fake_github import FakeGitHub
from tests.faults.conftest import PrivateRedis, StartWorkers
from tests.integration.test_ingest_processes import (
    Launch,
    dragon_env,
    signed,
    workflow_run_failure,
)
from tests.support.openai_server import (
    RERUN_FAILED_JOBS,
    OpenAiServer,
    running_openai_server,
)
from tests.support.otlp_receiver import TRACE_ID, TRACEPARENT, Collector, collector, exported, only

pytestmark = pytest.mark.one_pass(
    "postgresql", "a fleet of replicas and workers is the production topology, on PostgreSQL"
)

__all__ = ["collector"]


@pytest.fixture
async def openai() -> AsyncIterator[OpenAiServer]:
    async with running_openai_server(default=RERUN_FAILED_JOBS) as running:
        yield running


async def test_the_trace_of_a_webhook_continues_in_the_worker_process_to_github(
    database_url: str,
    tmp_path: Path,
    launch: Launch,
    private_redis: PrivateRedis,
    *,
    workers: StartWorkers,
    collector: tuple[Collector, str],
    github: FakeGitHub,
    openai: OpenAiServer,
) -> None:
    found, endpoint = collector
    env = dragon_env(
        database_url,
        redis_url=private_redis.url,
        worker_enabled="false",
        worker_poll_seconds="0.2",
        triage_enabled="true",
        triage_poll_seconds="0.2",
        github_token=github.state.token,
        github_api_url=github.url,
        llm_base_url=openai.url,
        llm_api_key="sk-trace-test-0123456789abcdef0123456789",
        llm_max_retries="0",
        otel_endpoint=endpoint,
    )
    env["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # the SDK's export period, in ms
    api = await launch({**env, "DRAGON_OTEL_SERVICE_NAME": "dragon-api"}, "api")
    await workers({**env, "DRAGON_OTEL_SERVICE_NAME": "dragon-worker"}, 1)
    body = workflow_run_failure(run_id=81_000, attempt=1, workflow="CI", branch="feature/login")
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as http:
        accepted = await http.post(
            "/webhooks/github",
            content=body,
            headers={**signed(body, str(uuid.uuid4())), "traceparent": TRACEPARENT},
        )
    assert accepted.status_code == 202, accepted.text

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = {s.name for s in exported(found)}
        if "run rerun_failed_jobs" in names and "POST /webhooks/github" in names:
            break
        await asyncio.sleep(0.2)
    spans = exported(found)

    webhook = only(spans, "POST /webhooks/github")
    processing = only(spans, "process delivery")
    triage = only(spans, "triage")
    run = only(spans, "run rerun_failed_jobs")
    assert webhook.trace_id == TRACE_ID
    assert processing.parent_id == webhook.span_id  # across the process boundary
    assert triage.parent_id == processing.span_id
    assert run.parent_id == triage.span_id
    outbound = [s for s in spans if s.parent_id in (triage.span_id, run.span_id)]
    assert {s.name for s in outbound} >= {"POST 127.0.0.1"}
    assert {s.trace_id for s in (processing, triage, run, *outbound)} == {TRACE_ID}
    sent = [tp for key, tp in github.state.traceparents if key.startswith("POST /repos/")]
    assert sent
    assert all(tp is not None and tp.split("-")[1] == TRACE_ID for tp in sent)
    assert openai.requests[0]["headers"]["traceparent"].split("-")[1] == TRACE_ID
