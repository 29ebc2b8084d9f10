"""Crash test: `dragon worker` is killed with SIGKILL in the middle of a run (its call to GitHub
made, the answer not yet back); after a restart the run completes and the action happened once,
as counted by the GitHub stand-in on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from dragon.app import build_services
from dragon.domain.clock import system_clock
from dragon.domain.enums import RunStatus
from dragon.domain.ports import Page, RunQuery
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.decisions import Proposal
from dragon.settings import Settings
from dragon.store.database import connect
from tests.conftest import Keys
from tests.fake_github import FakeGitHub
from tests.integration.test_runs import COMMENTS, REPO, propose

DRAGON = Path(sys.executable).parent / "dragon"


def worker_env(database_url: str, github: FakeGitHub) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGON_")}
    env.update(
        DRAGON_DATABASE_URL=database_url,
        DRAGON_GITHUB_TOKEN=github.state.token,
        DRAGON_GITHUB_API_URL=github.url,
        DRAGON_RUN_LEASE_SECONDS="3",
        DRAGON_WORKER_POLL_SECONDS="0.2",
        DRAGON_HTTP_TIMEOUT_SECONDS="30",
        DRAGON_BOOTSTRAP_ADMIN="false",
        DRAGON_LOG_FORMAT="json",
    )
    return env


async def start_worker(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            str(DRAGON),
            "worker",
            env=env,
            cwd=log.parent,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )


async def eventually(check: Any, *, within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def signal_once_commented(
    worker: asyncio.subprocess.Process, github: FakeGitHub, signum: int
) -> int:
    """Sends `signum` to `worker` once GitHub has its comment (the run in the middle of its
    call); returns its exit code. A worker still running when this ends is killed."""
    try:

        async def posted() -> bool:
            return github.state.count("POST", COMMENTS) == 1

        await eventually(posted, within=60, what="the worker's comment")
        worker.send_signal(signum)
        return await asyncio.wait_for(worker.wait(), timeout=30)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


async def test_a_worker_killed_mid_run_leaves_the_action_done_once_after_restart(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    database_url: str,
    tmp_path: Path,
) -> None:
    decision = await propose(client, keys)
    env = worker_env(database_url, github)
    log = tmp_path / "worker.log"
    # GitHub takes the comment at once but answers only after 20 s: the worker dies waiting.
    github.state.stall[f"POST {COMMENTS}"] = 20.0
    first = await start_worker(env, log)
    assert await signal_once_commented(first, github, signal.SIGKILL) == -signal.SIGKILL

    (run,) = (await services.runs.find(RunQuery(page=Page(limit=5))))[0]
    assert run.status is RunStatus.RUNNING  # it died holding the run
    github.state.stall.clear()

    second = await start_worker(env, log)
    try:

        async def finished() -> bool:
            return (await services.runs.get(run.id)).status is RunStatus.SUCCEEDED

        await eventually(finished, within=60, what="the run to finish after the restart")
    finally:
        second.terminate()
        assert await asyncio.wait_for(second.wait(), timeout=20) == 0, log.read_text()[-2000:]

    assert github.state.count("POST", COMMENTS) == 1
    assert len(github.state.comments[f"{REPO}#issues/7"]) == 1
    done = await services.runs.get(run.id)
    assert done.attempts == 2
    steps = [(entry["step"], entry["status"]) for entry in done.log]
    assert ("recovered", "ok") in steps
    assert ("comment", "reused") in steps
    view = await services.decisions.get(decision["id"])
    assert view.decision.status.value == "succeeded"
    assert (await services.audit.verify()).ok


async def test_a_worker_alone_on_a_fresh_store_records_the_policy_its_decisions_name(
    github: FakeGitHub, database_url: str, tmp_path: Path
) -> None:
    """No `dragon serve` ever started: the decision (as triage in the worker would propose it)
    names the shipped default policy, which the worker stores, so its run is authorised."""
    database = connect(database_url, pool_size=2)
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    alone = build_services(settings, database, clock=system_clock)
    decision = await alone.decisions.propose(
        SYSTEM_CALLER,
        Proposal(
            action="comment", title="tell", repo=REPO, params={"body": "hi", "pull_number": 7}
        ),
    )
    log = tmp_path / "worker.log"
    worker = await start_worker(worker_env(database_url, github), log)
    try:

        async def finished() -> bool:
            view = await alone.decisions.get(decision.id)
            return view.decision.status.value in ("succeeded", "failed")

        await eventually(finished, within=60, what="the decision's run to finish")
    finally:
        worker.terminate()
        assert await asyncio.wait_for(worker.wait(), timeout=20) == 0, log.read_text()[-2000:]
        await database.dispose()
    runs, _ = await alone.runs.find(RunQuery(page=Page(limit=5)))
    assert [(r.status, r.error_code) for r in runs] == [(RunStatus.SUCCEEDED, None)]
    assert (await alone.decisions.get(decision.id)).decision.status.value == "succeeded"
    assert github.state.count("POST", COMMENTS) == 1
