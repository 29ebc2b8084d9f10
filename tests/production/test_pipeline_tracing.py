"""One trace from the webhook to GitHub: the request that accepted a delivery, the worker's
processing of it, the triage of the incident it opened, the run of the decision triage proposed
and the run's outbound call are parent and child in that order, exported over OTLP/HTTP to a
real receiver on loopback; GitHub receives the trace's traceparent; the worker's log lines
carry the trace id. With tracing off, nothing of it is stored or sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.services.container import Services
from dragon.workers.runs import run_pass
from tests.api.test_ingestion import fixture, github_headers
from tests.conftest import Keys
from tests.fake_github import FakeGitHub
from tests.production.conftest import AppFactory
from tests.support.openai_server import (
    RERUN_FAILED_JOBS,
    OpenAiServer,
    running_openai_server,
)
from tests.support.otlp_receiver import (
    TRACE_ID,
    TRACEPARENT,
    Collector,
    collector,
    exported,
    only,
)

__all__ = ["collector"]  # the receiver fixture, shared with the request-span tests


@pytest.fixture
async def openai() -> AsyncIterator[OpenAiServer]:
    async with running_openai_server(default=RERUN_FAILED_JOBS) as running:
        yield running


def pipeline_settings(github: FakeGitHub, openai: OpenAiServer) -> dict[str, Any]:
    return {
        "github_token": SecretStr(github.state.token),
        "github_api_url": github.url,
        "http_timeout_seconds": 5.0,
        "llm_base_url": openai.url,
        "llm_api_key": SecretStr("sk-test-0123456789abcdef0123456789abcdef"),
        "llm_max_retries": 0,
    }


async def drive_pipeline(services: Services, http: httpx.AsyncClient, keys: Keys) -> str:
    """Webhook in, then each worker step once, as a worker process would; returns the run's
    GitHub call."""
    failure = fixture("github", "workflow_run.completed.failure")
    failure["workflow_run"]["head_branch"] = "feature/login"  # low risk: runs without waiting
    body = json.dumps(failure).encode()
    accepted = await http.post(
        "/webhooks/github",
        content=body,
        headers={**github_headers(body, "workflow_run"), "traceparent": TRACEPARENT},
    )
    assert accepted.status_code == 202, accepted.text
    assert await services.processor.run_due() == 1
    assert await services.triage.run_pending() == 1
    decisions = (await http.get("/api/v1/decisions", headers=keys.of("viewer"))).json()["items"]
    [decision] = decisions
    if decision["status"] == "pending_approval":
        for who in ("approver", "approver2")[: decision["approvals_required"]]:
            await http.post(
                f"/api/v1/decisions/{decision['id']}/approve",
                json={"justification": "rerun is safe"},
                headers=keys.of(who),
            )
    await run_pass(services)
    return str(decision["action"])


async def test_the_webhook_processing_triage_run_and_github_call_form_one_trace(
    make_app: AppFactory,
    keys: Keys,
    collector: tuple[Collector, str],
    *,
    github: FakeGitHub,
    openai: OpenAiServer,
    json_logs: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    found, endpoint = collector
    settings = {**pipeline_settings(github, openai), "otel_endpoint": endpoint}
    async with make_app(**settings) as (app, http):
        json_logs()
        action = await drive_pipeline(app.state.services, http, keys)
        logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert found.received.wait(10)

    spans = exported(found)
    webhook = only(spans, "POST /webhooks/github")
    processing = only(spans, "process delivery")
    triage = only(spans, "triage")
    run = only(spans, f"run {action}")
    calls = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT and s.parent_id == run.span_id]
    assert webhook.trace_id == TRACE_ID  # the sender's trace continues
    assert processing.parent_id == webhook.span_id
    assert processing.kind == Span.SPAN_KIND_CONSUMER
    assert triage.parent_id == processing.span_id
    assert run.parent_id == triage.span_id
    llm_calls = [
        s for s in spans if s.kind == Span.SPAN_KIND_CLIENT and s.parent_id == triage.span_id
    ]
    assert [s.name for s in llm_calls] == ["POST 127.0.0.1"]  # the model's answer
    assert calls, [s.name for s in spans]
    assert {s.trace_id for s in (processing, triage, run, *calls)} == {TRACE_ID}
    assert {s.name for s in calls} <= {"GET 127.0.0.1", "POST 127.0.0.1"}
    assert "POST 127.0.0.1" in {s.name for s in calls}  # the rerun itself
    # GitHub got the trace context of the run's call, so its side can join the trace.
    sent = [tp for key, tp in github.state.traceparents if key.startswith("POST /repos/")]
    assert sent
    assert all(tp is not None and tp.split("-")[1] == TRACE_ID for tp in sent)
    triaged = [e for e in logged if e.get("event") == "incident_triaged"]
    assert triaged
    assert triaged[0]["trace_id"] == TRACE_ID


async def test_with_tracing_off_no_trace_context_is_stored_or_sent(
    make_app: AppFactory,
    keys: Keys,
    *,
    github: FakeGitHub,
    openai: OpenAiServer,
    database_url: str,
) -> None:
    async with make_app(**pipeline_settings(github, openai)) as (app, http):
        await drive_pipeline(app.state.services, http, keys)

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            headers = (await connection.execute(sa.text("SELECT headers FROM deliveries"))).scalar()
            contexts = (
                await connection.execute(
                    sa.text(
                        "SELECT count(*) FROM incidents WHERE trace_context IS NOT NULL UNION ALL "
                        "SELECT count(*) FROM decisions WHERE trace_context IS NOT NULL"
                    )
                )
            ).scalars()
            stored = list(contexts)
    finally:
        await engine.dispose()
    assert isinstance(headers, (dict, str))
    assert "traceparent" not in (headers if isinstance(headers, dict) else json.loads(headers))
    assert stored == [0, 0]
    assert github.state.traceparents
    assert all(tp is None for _, tp in github.state.traceparents)
    assert all("traceparent" not in r["headers"] for r in openai.requests)
