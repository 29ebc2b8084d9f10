"""GitLab and Jenkins actions carried out by the run worker, decided and approved through the
API: GitLab retries a pipeline and a job, Jenkins builds with parameters (CSRF crumb) and reads
a build's console output, each against the vendor stand-in on 127.0.0.1
(tests/integration/test_gitlab_jenkins_actions.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dragon.services.container import Services
from dragon.settings import Settings
from dragon.workers.runs import run_pass
from tests.api.test_decisions_api import runnable
from tests.conftest import Keys
from tests.integration.test_gitlab_jenkins_actions import (
    GITLAB_TOKEN,
    JENKINS_TOKEN,
    JENKINS_USER,
    KEY_PARAMETER,
    Vendor,
    vendor,
)
from tests.integration.test_runs import changed, run_of

__all__ = ["vendor"]
PROJECT = "acme/platform/api"


@pytest.fixture
def settings(settings: Settings, vendor: tuple[Vendor, str]) -> Settings:
    _, url = vendor
    return changed(
        settings,
        gitlab_token=GITLAB_TOKEN,
        gitlab_api_url=url,
        jenkins_url=url,
        jenkins_user=JENKINS_USER,
        jenkins_api_token=JENKINS_TOKEN,
        http_timeout_seconds=5.0,
    )


async def decided(
    client: httpx.AsyncClient, keys: Keys, *, source: str, action: str, params: dict[str, Any]
) -> dict[str, Any]:
    return await runnable(
        client,
        keys,
        justification="go ahead",
        action=action,
        title=f"{action} on {source}",
        source=source,
        repo=PROJECT,
        params=params,
    )


async def test_gitlab_retries_a_pipeline_and_a_job_through_the_worker(
    client: httpx.AsyncClient, keys: Keys, services: Services, vendor: tuple[Vendor, str]
) -> None:
    state, _ = vendor
    pipeline = await decided(
        client, keys, source="gitlab", action="rerun_job", params={"pipeline_id": 88}
    )
    job = await decided(
        client, keys, source="gitlab", action="rerun_failed_jobs", params={"job_id": 7}
    )
    await run_pass(services)
    await run_pass(services)
    retried_pipeline = await run_of(client, keys, pipeline["id"])
    retried_job = await run_of(client, keys, job["id"])
    assert retried_pipeline["status"] == "succeeded", retried_pipeline
    assert retried_pipeline["result"]["url"].endswith("/acme/platform/api/-/pipelines/88")
    assert retried_job["status"] == "succeeded", retried_job
    assert retried_job["result"]["job_id"] == 1007
    encoded = "/api/v4/projects/acme%2Fplatform%2Fapi"
    assert state.calls[f"POST {encoded}/pipelines/88/retry"] == 1
    assert state.calls[f"POST {encoded}/jobs/7/retry"] == 1


async def test_jenkins_builds_with_the_crumb_and_reads_the_console_through_the_worker(
    client: httpx.AsyncClient, keys: Keys, services: Services, vendor: tuple[Vendor, str]
) -> None:
    state, _ = vendor
    build = await decided(
        client,
        keys,
        source="jenkins",
        action="rerun_job",
        params={"job": "api-ci", "parameters": {"BRANCH": "main"}},
    )
    console = await decided(
        client,
        keys,
        source="jenkins",
        action="read_console",
        params={"job": "api-ci", "build": 12},
    )
    assert console["status"] == "auto_approved"  # reads only: no risk
    await run_pass(services)
    await run_pass(services)
    built = await run_of(client, keys, build["id"])
    assert built["status"] == "succeeded", built
    assert built["result"]["queue_url"].endswith("/queue/item/1/")
    (item,) = state.queue
    parameters = {p["name"]: p["value"] for p in item["actions"][0]["parameters"]}
    assert parameters == {"BRANCH": "main", KEY_PARAMETER: built["idempotency_key"]}
    read = await run_of(client, keys, console["id"])
    assert read["status"] == "succeeded", read
    assert read["result"]["console_tail"].endswith("Finished: FAILURE\n")
    (step,) = [s for s in read["log"] if s["step"] == "console"]
    assert "+ make test" in step["detail"]
    assert state.calls["GET /job/api-ci/12/consoleText"] == 1
    assert state.calls["POST /job/api-ci/buildWithParameters"] == 1


async def test_reading_a_console_refuses_a_build_that_is_not_a_number_or_a_known_alias(
    client: httpx.AsyncClient, keys: Keys, services: Services, vendor: tuple[Vendor, str]
) -> None:
    state, _ = vendor
    console = await decided(
        client,
        keys,
        source="jenkins",
        action="read_console",
        params={"job": "api-ci", "build": "../../script"},
    )
    await run_pass(services)
    read = await run_of(client, keys, console["id"])
    assert (read["status"], read["error_code"]) == ("failed", "action_params_invalid")
    assert not any("consoleText" in call for call in state.calls)
