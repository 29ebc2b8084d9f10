"""Which failures a run retries, and how: a 429 waits at least as long as its Retry-After, a
vendor that does not answer in time is tried again, and each vendor's circuit breaker opens on
its own after repeated 5xx, holding that vendor's runs queued without calling it while another
vendor's actions go on. Against the GitHub and GitLab stand-ins on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from dragon.services.container import Services
from dragon.settings import Settings
from dragon.workers.runs import run_pass
from tests.conftest import FakeClock, Keys
from tests.fake_github import FakeGitHub, Scripted
from tests.integration.test_gitlab_jenkins_actions import GITLAB_TOKEN, Vendor, vendor
from tests.integration.test_runs import COMMENTS, REPO, changed, propose, run_of
from tests.integration.test_vendor_runs import decided

__all__ = ["vendor"]


@pytest.fixture
def settings(settings: Settings, github: FakeGitHub, vendor: tuple[Vendor, str]) -> Settings:
    _, gitlab_url = vendor
    return changed(
        settings,
        github_token=github.state.token,
        github_api_url=github.url,
        gitlab_token=GITLAB_TOKEN,
        gitlab_api_url=gitlab_url,
        http_timeout_seconds=1.0,
    )


async def test_a_429_waits_as_long_as_its_retry_after_then_comments_once(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, clock: FakeClock
) -> None:
    github.state.script[f"POST {COMMENTS}"] = [
        Scripted(429, {"message": "slow down"}, {"Retry-After": "120"})
    ]
    decision = await propose(client, keys)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["error_code"]) == ("queued", "vendor_unavailable")
    assert "slow down" in run["error"]
    clock.advance(seconds=60)  # past the 10 s backoff, not past Retry-After
    assert await run_pass(services) == 0
    clock.advance(seconds=61)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    assert len(github.state.comments[f"{REPO}#issues/7"]) == 1


async def test_a_vendor_that_does_not_answer_in_time_is_tried_again(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, clock: FakeClock
) -> None:
    github.state.stall[f"GET {COMMENTS}"] = 3.0  # DRAGON_HTTP_TIMEOUT_SECONDS is 1
    decision = await propose(client, keys)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["error_code"]) == ("queued", "vendor_timeout")
    github.state.stall.clear()
    clock.advance(seconds=11)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    assert github.state.count("POST", COMMENTS) == 1


async def test_githubs_breaker_opens_on_repeated_5xx_and_gitlab_goes_on(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    vendor: tuple[Vendor, str],
    clock: FakeClock,
) -> None:
    github.state.script[f"GET {COMMENTS}"] = [Scripted(503, {"message": "down"})] * 5
    failing = [
        await propose(client, keys, params={"body": f"n{i}", "pull_number": 7}) for i in range(5)
    ]
    await run_pass(services)
    for decision in failing:
        assert (await run_of(client, keys, decision["id"]))["error_code"] == "vendor_unavailable"
    calls = sum(github.state.calls.values())

    held = await propose(client, keys, params={"body": "held", "pull_number": 7})
    gitlab = await decided(
        client, keys, source="gitlab", action="rerun_job", params={"pipeline_id": 88}
    )
    await run_pass(services)

    run = await run_of(client, keys, held["id"])
    assert (run["status"], run["error_code"]) == ("queued", "circuit_open")
    assert sum(github.state.calls.values()) == calls  # the open breaker called nobody
    assert (await run_of(client, keys, gitlab["id"]))["status"] == "succeeded"
    state, _ = vendor
    assert state.calls["POST /api/v4/projects/acme%2Fplatform%2Fapi/pipelines/88/retry"] == 1
    # Once the breaker lets a probe through and GitHub answers, the held run posts once.
    clock.advance(seconds=31)
    await run_pass(services)
    assert (await run_of(client, keys, held["id"]))["status"] == "succeeded"
    assert [c["body"].split("\n")[0] for c in github.state.comments[f"{REPO}#issues/7"]].count(
        "held"
    ) == 1
