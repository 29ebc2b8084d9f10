"""SIGTERM to `dragon worker` in the middle of a run (its call to GitHub made, the answer 3 s
away): the worker claims nothing more, waits for the answer, finishes the run and releases its
lease, then exits 0; nothing is left for another worker to recover."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from dragon.domain.enums import RunStatus
from dragon.domain.ports import Page, RunQuery
from dragon.services.container import Services
from tests.conftest import Keys
from tests.fake_github import FakeGitHub
from tests.integration.test_run_crash import signal_once_commented, start_worker, worker_env
from tests.integration.test_runs import COMMENTS, REPO, propose


async def test_sigterm_during_a_run_lets_it_finish_and_the_worker_exits_0(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    database_url: str,
    tmp_path: Path,
) -> None:
    decision = await propose(client, keys)
    env = {**worker_env(database_url, github), "DRAGON_RUN_LEASE_SECONDS": "60"}
    log = tmp_path / "worker.log"
    github.state.stall[f"POST {COMMENTS}"] = 3.0
    worker = await start_worker(env, log)
    code = await signal_once_commented(worker, github, signal.SIGTERM)

    assert code == 0, log.read_text()[-2000:]
    (run,) = (await services.runs.find(RunQuery(page=Page(limit=5))))[0]
    assert run.status is RunStatus.SUCCEEDED  # finished before the exit, not left running
    assert run.attempts == 1
    assert ("recovered", "ok") not in [(e["step"], e["status"]) for e in run.log]
    assert github.state.count("POST", COMMENTS) == 1
    assert len(github.state.comments[f"{REPO}#issues/7"]) == 1
    view = await services.decisions.get(decision["id"])
    assert view.decision.status.value == "succeeded"
