"""A run whose worker dies every time it carries it out is taken over once per lease, but only
`run_max_attempts` times in all: then it fails with `run_worker_lost`, audited and notified.

The worker "dies" here as a worker process does when it is killed: its pass is cancelled while
the action's call to the GitHub stand-in (127.0.0.1) is in flight, leaving the run held, its
lease running out on the (fake) clock. tests/integration/test_run_crash.py does it with SIGKILL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from dragon.services.container import Services
from dragon.settings import Settings
from dragon.workers.runs import run_pass
from tests.conftest import FakeClock, Keys
from tests.fake_github import FakeGitHub
from tests.integration.test_runs import (
    COMMENTS,
    audit_actions,
    changed,
    decision_status,
    outbox_events,
    propose,
    run_of,
)

LEASE = 60.0


@pytest.fixture
def settings(settings: Settings, github: FakeGitHub) -> Settings:
    return changed(
        settings,
        github_token=github.state.token,
        github_api_url=github.url,
        http_timeout_seconds=30.0,
        run_lease_seconds=LEASE,
        run_max_attempts=3,
    )


async def die_mid_action(services: Services, github: FakeGitHub, *, calls_before: int) -> None:
    """One worker pass that is killed once the action's first call reached GitHub."""
    task = asyncio.create_task(run_pass(services))
    deadline = asyncio.get_running_loop().time() + 20
    while github.state.count("GET", COMMENTS) == calls_before:
        assert not task.done(), "the pass ended before its action called GitHub"
        assert asyncio.get_running_loop().time() < deadline, "the action never called GitHub"
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_run_whose_worker_dies_every_time_fails_as_worker_lost_after_max_attempts(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    clock: FakeClock,
    database_url: str,
) -> None:
    # GitHub never answers the comment listing in time: every worker dies waiting for it.
    github.state.stall[f"GET {COMMENTS}"] = 25.0
    decision = await propose(client, keys)
    for attempt in range(3):
        await die_mid_action(services, github, calls_before=attempt)
        run = await run_of(client, keys, decision["id"])
        assert (run["status"], run["attempts"]) == ("running", attempt + 1)
        assert await run_pass(services) == 0  # held until its lease runs out
        clock.advance(seconds=LEASE + 1)

    await run_pass(services)

    run: dict[str, Any] = await run_of(client, keys, decision["id"])
    assert run["status"] == "failed"
    assert run["error_code"] == "run_worker_lost"
    assert run["attempts"] == 3
    assert github.state.count("GET", COMMENTS) == 3  # no fourth try
    assert github.state.count("POST", COMMENTS) == 0
    assert ("recovered", "failed") in [(s["step"], s["status"]) for s in run["log"]]
    assert await decision_status(client, keys, decision["id"]) == "failed"
    assert (await audit_actions(services, run["id"]))[-1] == "run.failed"
    assert (await audit_actions(services, decision["id"]))[-1] == "decision.failed"
    assert "run.failed" in await outbox_events(database_url)
    assert (await services.audit.verify()).ok
    # It stays failed: later passes never take it over again.
    clock.advance(seconds=LEASE * 10)
    assert await run_pass(services) == 0


async def test_a_run_taken_over_within_its_attempts_still_finishes_once(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, clock: FakeClock
) -> None:
    github.state.stall[f"GET {COMMENTS}"] = 25.0
    decision = await propose(client, keys)
    await die_mid_action(services, github, calls_before=0)
    github.state.stall.clear()
    clock.advance(seconds=LEASE + 1)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    assert github.state.count("POST", COMMENTS) == 1
