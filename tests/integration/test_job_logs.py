"""Fetching failed jobs' logs from GitHub, GitLab and Jenkins, against local servers speaking
real HTTP on 127.0.0.1: the tail only, bounded, with timeouts, credentials sent only where
they belong, and a breaker per vendor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from dragon.app import create_app
from dragon.domain.breaker import BreakerState, CircuitBreaker
from dragon.domain.entities import Signal
from dragon.domain.enums import Role, Severity
from dragon.integrations.github_logs import GithubJobLogs
from dragon.integrations.gitlab_logs import GitlabJobLogs
from dragon.integrations.jenkins_logs import JenkinsJobLogs
from dragon.integrations.job_logs import JobLogs, TailLimits
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Settings
from tests.api.test_ingestion import fixture, post_github
from tests.conftest import FakeClock
from tests.support.local_http import serving
from tests.support.readiness import app_ready

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ci_logs"
RUFF_LOG = (CORPUS / "lint_format" / "ruff_many_rules.log").read_bytes()
# A long log whose cause is at its end, as CI logs are.
LONG_LOG = b"".join(b"progress line %06d ok\n" % n for n in range(40_000)) + RUFF_LOG
TOKEN = "ghs_" + "t" * 36


@dataclass
class Vendor:
    """What the local vendor server saw, and how it should behave."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    honour_range: bool = True
    delay: float = 0.0
    status: int = 200
    blob_url: str = ""

    def body(self, request: Request, data: bytes) -> Response:
        wanted = request.headers.get("range", "")
        if self.honour_range and wanted.startswith("bytes=-"):
            size = int(wanted.removeprefix("bytes=-"))
            return Response(data[-size:], status_code=206, media_type="text/plain")
        return Response(data, media_type="text/plain")

    async def record(self, request: Request) -> None:
        self.seen.append({"path": request.url.path, "headers": dict(request.headers)})
        if self.delay:
            await asyncio.sleep(self.delay)


def github_app(vendor: Vendor) -> Starlette:
    async def jobs(request: Request) -> Response:
        await vendor.record(request)
        return JSONResponse(
            {
                "total_count": 2,
                "jobs": [
                    {"id": 101, "conclusion": "success"},
                    {"id": 289782451, "conclusion": "failure"},
                ],
            }
        )

    async def logs(request: Request) -> Response:
        await vendor.record(request)
        if vendor.status != 200:
            return PlainTextResponse("no", status_code=vendor.status)
        job = request.path_params["job"]
        return RedirectResponse(f"{vendor.blob_url}/blob/{job}.txt", status_code=302)

    return Starlette(
        routes=[
            Route("/repos/{owner}/{repo}/actions/runs/{run}/jobs", jobs),
            Route("/repos/{owner}/{repo}/actions/jobs/{job}/logs", logs),
        ]
    )


def blob_app(vendor: Vendor) -> Starlette:
    async def blob(request: Request) -> Response:
        await vendor.record(request)
        return vendor.body(request, LONG_LOG)

    return Starlette(routes=[Route("/blob/{name}", blob)])


@pytest.fixture
async def github() -> AsyncIterator[tuple[str, Vendor, Vendor]]:
    api, storage = Vendor(), Vendor()
    async with serving(blob_app(storage)) as blob_base, serving(github_app(api)) as api_base:
        api.blob_url = blob_base
        yield api_base, api, storage


def signal(source: str, **fields: Any) -> Signal:
    now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    base: dict[str, Any] = {
        "id": "sig_test",
        "delivery_id": "dlv_test",
        "source": source,
        "kind": "ci_failure",
        "signal_key": "k",
        "fingerprint": "f",
        "title": "failed",
        "severity": Severity.SEV3,
        "occurred_at": now,
        "created_at": now,
    }
    return Signal(**{**base, **fields})


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(follow_redirects=True, max_redirects=3)


LIMITS = TailLimits(max_bytes=64 * 1024, timeout=2.0)


async def test_a_github_job_log_is_its_tail_and_the_token_never_follows_the_redirect(
    github: tuple[str, Vendor, Vendor],
) -> None:
    api_url, api, storage = github
    async with client() as http:
        fetcher = GithubJobLogs(http, api_url=api_url, token=TOKEN, limits=LIMITS)
        text = await fetcher.fetch(
            signal("github", repo="Codertocat/Hello-World", labels={"job_id": "289782451"})
        )
    assert text is not None
    assert len(text.encode()) <= LIMITS.max_bytes
    assert text.endswith(RUFF_LOG.decode())  # the cause at the end is kept
    assert not text.startswith("progress line 000000")
    assert api.seen[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert api.seen[0]["headers"]["x-github-api-version"] == "2022-11-28"
    assert "authorization" not in storage.seen[0]["headers"]
    assert storage.seen[0]["headers"]["range"] == f"bytes=-{LIMITS.max_bytes}"


async def test_a_workflow_run_signal_finds_its_failed_job_first(
    github: tuple[str, Vendor, Vendor],
) -> None:
    api_url, api, _ = github
    async with client() as http:
        fetcher = GithubJobLogs(http, api_url=api_url, token=TOKEN, limits=LIMITS)
        text = await fetcher.fetch(signal("github", repo="acme/app", labels={"run_id": "7"}))
    assert text is not None
    assert [s["path"] for s in api.seen] == [
        "/repos/acme/app/actions/runs/7/jobs",
        "/repos/acme/app/actions/jobs/289782451/logs",
    ]


async def test_a_server_ignoring_range_is_read_as_a_bounded_tail(
    github: tuple[str, Vendor, Vendor],
) -> None:
    api_url, _, storage = github
    storage.honour_range = False
    async with client() as http:
        fetcher = GithubJobLogs(http, api_url=api_url, token=TOKEN, limits=LIMITS)
        text = await fetcher.fetch(signal("github", repo="a/b", labels={"job_id": "1"}))
    assert text is not None
    assert len(text.encode()) <= LIMITS.max_bytes


@pytest.mark.parametrize(
    "labels",
    [{}, {"job_id": "../../admin"}, {"job_id": "1?x=1"}, {"run_id": "abc"}],
)
async def test_signals_without_a_usable_job_fetch_nothing(
    github: tuple[str, Vendor, Vendor], labels: dict[str, str]
) -> None:
    api_url, api, _ = github
    async with client() as http:
        fetcher = GithubJobLogs(http, api_url=api_url, token=TOKEN, limits=LIMITS)
        assert await fetcher.fetch(signal("github", repo="a/b", labels=labels)) is None
    assert api.seen == []


async def test_timeouts_and_5xx_open_the_vendor_breaker_but_404_does_not(
    github: tuple[str, Vendor, Vendor], clock: FakeClock
) -> None:
    api_url, api, _ = github
    breaker = CircuitBreaker("github_logs", clock=clock, failure_threshold=2, reset_seconds=30)
    job = signal("github", repo="a/b", labels={"job_id": "1"})
    async with client() as http:
        fetcher = GithubJobLogs(
            http, api_url=api_url, token=TOKEN, limits=TailLimits(max_bytes=1024, timeout=0.3)
        )
        logs = JobLogs({"github": (fetcher, breaker)})
        api.status = 404
        assert await logs.job_log(job) is None
        assert breaker.state is BreakerState.CLOSED
        api.status, api.delay = 200, 1.0
        assert await logs.job_log(job) is None  # timed out
        api.status, api.delay = 502, 0.0
        assert await logs.job_log(job) is None
        assert breaker.state is BreakerState.OPEN
        calls = len(api.seen)
        assert await logs.job_log(job) is None
        assert len(api.seen) == calls  # open: nothing sent
        clock.advance(seconds=31)
        api.status = 200
        assert await logs.job_log(job) is not None
        assert breaker.state is BreakerState.CLOSED
        assert await logs.job_log(signal("gitlab")) is None  # no fetcher for that vendor


async def test_a_gitlab_trace_is_fetched_with_its_private_token() -> None:
    vendor = Vendor()

    async def trace(request: Request) -> Response:
        await vendor.record(request)
        return vendor.body(request, RUFF_LOG)

    async def jobs(request: Request) -> Response:
        await vendor.record(request)
        assert request.query_params.get("scope[]") == "failed"
        return JSONResponse([{"id": 380, "status": "failed"}])

    app = Starlette(
        routes=[
            Route("/api/v4/projects/{project}/jobs/{job}/trace", trace),
            Route("/api/v4/projects/{project}/pipelines/{pipeline}/jobs", jobs),
        ]
    )
    async with serving(app) as base, client() as http:
        fetcher = GitlabJobLogs(http, base_url=base, token="glpat-" + "x" * 20, limits=LIMITS)
        by_job = await fetcher.fetch(
            signal("gitlab", labels={"project_id": "380", "job_id": "1976"})
        )
        by_pipeline = await fetcher.fetch(
            signal("gitlab", labels={"project_id": "380", "pipeline_id": "31"})
        )
    assert by_job == by_pipeline == RUFF_LOG.decode()
    assert vendor.seen[0]["path"] == "/api/v4/projects/380/jobs/1976/trace"
    assert vendor.seen[0]["headers"]["private-token"] == "glpat-" + "x" * 20
    assert vendor.seen[-1]["path"] == "/api/v4/projects/380/jobs/380/trace"


async def test_jenkins_console_text_is_read_only_under_the_configured_url() -> None:
    vendor = Vendor()

    async def console(request: Request) -> Response:
        await vendor.record(request)
        return vendor.body(request, RUFF_LOG)

    app = Starlette(routes=[Route("/job/shop/job/main/{number}/consoleText", console)])
    async with serving(app) as base, client() as http:
        fetcher = JenkinsJobLogs(
            http, base_url=base, user="ci", token="jenkins-api-token", limits=LIMITS
        )
        text = await fetcher.fetch(signal("jenkins", url=f"{base}/job/shop/job/main/42/"))
        elsewhere = await fetcher.fetch(signal("jenkins", url="http://127.0.0.2:1/job/x/1/"))
        sneaky = await fetcher.fetch(signal("jenkins", url=f"{base}/job/../../script/1/"))
    assert text == RUFF_LOG.decode()
    assert elsewhere is None
    assert sneaky is None
    [seen] = vendor.seen
    assert seen["headers"]["authorization"].startswith("Basic ")
    assert json.dumps(seen).count("jenkins-api-token") == 0  # sent encoded, never in clear


async def test_triage_of_a_github_webhook_reads_the_failed_jobs_log(
    github: tuple[str, Vendor, Vendor], settings: Settings, clock: FakeClock
) -> None:
    api_url, api, _ = github
    configured = settings.model_copy(
        update={"triage_github_api_url": api_url, "triage_github_token": SecretStr(TOKEN)}
    )
    application = create_app(configured, clock=clock)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        services: Services = application.state.services
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            sent = await post_github(
                http, fixture("github", "workflow_job.completed.failure"), "workflow_job"
            )
            assert sent.status_code == 202, sent.text
            await services.processor.run_due()
            assert await services.triage.run_pending() == 1
            issued = await services.auth.create_key(SYSTEM_CALLER, name="v", role=Role.VIEWER)
            listed = await http.get(
                "/api/v1/decisions", headers={"Authorization": f"Bearer {issued.secret}"}
            )
    [decision] = listed.json()["items"]
    assert decision["provenance"]["classification"] == "lint_format"
    assert decision["action"] == "autofix_pull_request"
    assert api.seen[0]["path"] == "/repos/Codertocat/Hello-World/actions/jobs/289782451/logs"
    assert application.state.services.breakers.states()["github_logs"] == "closed"
