"""Measures execution: how fast approved decisions become runs and act, once each, in process
against the GitHub stand-in on loopback (one `comment` per decision).

    .venv/bin/python bench/bench_runs.py [--database-url URL] [--decisions 300]

Defaults to a fresh SQLite file under var/bench/. Prints the figures and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI  # noqa: E402
from tests.fake_github import FakeGitHub  # noqa: E402

from dragon.app import create_app  # noqa: E402 - after the path above
from dragon.domain.enums import DecisionStatus, RunStatus  # noqa: E402
from dragon.domain.ports import DecisionQuery, Page, RunQuery  # noqa: E402
from dragon.services.context import SYSTEM_CALLER  # noqa: E402
from dragon.services.decisions import Proposal  # noqa: E402
from dragon.settings import Settings  # noqa: E402
from dragon.store.migrate import upgrade  # noqa: E402
from dragon.workers.runs import run_pass  # noqa: E402

READY_SECONDS = 120.0


async def ready(app: FastAPI) -> None:
    """Wait until the app finished initialising (its first store check can be retried in the
    background on a busy machine): proposals made before that would measure start-up."""
    deadline = time.monotonic() + READY_SECONDS
    while not getattr(app.state, "ready", False):
        if getattr(app.state, "startup_failed", False):
            raise SystemExit("the app gave up initialising")
        if time.monotonic() > deadline:
            raise SystemExit(f"the app was not ready within {READY_SECONDS:.0f} s")
        await asyncio.sleep(0.05)


async def main(database_url: str, decisions: int) -> None:
    await upgrade(database_url)
    with FakeGitHub() as github:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            bootstrap_admin=False,
            worker_enabled=False,
            log_level="error",
            github_token=github.state.token,
            github_api_url=github.url,
        )
        app = create_app(settings)
        services = app.state.services
        async with app.router.lifespan_context(app):
            await ready(app)
            started = time.perf_counter()
            for i in range(decisions):
                await services.decisions.propose(
                    SYSTEM_CALLER,
                    Proposal(
                        action="comment",
                        title=f"bench {i}",
                        repo=f"bench/repo{i % 50}",
                        params={"body": f"note {i}", "pull_number": 1},
                    ),
                )
            proposed = time.perf_counter() - started
            started = time.perf_counter()
            while await run_pass(services):
                pass
            executed = time.perf_counter() - started
            done, _ = await services.runs.find(
                RunQuery(status=RunStatus.SUCCEEDED, page=Page(limit=200))
            )
            left, _ = await services.decisions.find(
                DecisionQuery(status=DecisionStatus.AUTO_APPROVED, page=Page(limit=200))
            )
    posts = github.state.count("POST", r"/repos/[^/]+/[^/]+/issues/1/comments")
    load = " ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"database          {database_url.split(':', maxsplit=1)[0]}")
    print(f"decisions         {decisions} proposed in {proposed:.2f} s")
    print(f"runs executed     {decisions / executed:8.1f} runs/s ({executed:.2f} s)")
    print(f"comments posted   {posts} (expected {decisions}); first page succeeded: {len(done)}")
    print(f"left unexecuted   {len(left)}")
    print(f"load average      {load} (1, 5, 15 min)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--decisions", type=int, default=300)
    args = parser.parse_args()
    url = args.database_url
    if not url:
        directory = ROOT / "var" / "bench"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        url = f"sqlite+aiosqlite:///{directory / 'runs.db'}"
    os.environ.pop("DRAGON_DATABASE_URL", None)
    asyncio.run(main(url, args.decisions))
