"""`dragon runs prune` on the real database: the retention job's settings, what it pruned
printed, `--dry-run` deleting nothing, and incidents, decisions and audit events never pruned."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.app import build_services
from dragon.domain.clock import system_clock
from dragon.domain.enums import RunStatus, Severity
from dragon.domain.ports import Page, RunQuery
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.decisions import Proposal
from dragon.services.incidents import NewIncident
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.workers.runs import run_action_worker
from tests.integration.test_cli import cli_env, on_store, run, said

__all__ = ["cli_env"]
TABLES = ("incidents", "decisions", "audit_events", "runs")


def finished_runs(database_url: str, *, count: int, days_ago: float) -> list[str]:
    """`count` incidents, each with a decision whose (dry) run finished `days_ago` days ago;
    returns the ids of every run in the store."""

    def clock() -> datetime:
        return system_clock() - timedelta(days=days_ago)

    async def go() -> list[str]:
        database = connect(database_url, pool_size=2)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=database_url,
            github_token="ghs_unused_the_runs_are_dry",
            actions_dry_run=True,
        )
        services = build_services(settings, database, clock=clock)
        try:
            await services.policies.ensure_stored(SYSTEM_CALLER)  # as `dragon serve` does
            for n in range(count):
                incident = await services.incidents.open(
                    SYSTEM_CALLER, NewIncident(title=f"job {n} failed", severity=Severity.SEV3)
                )
                await services.decisions.propose(
                    SYSTEM_CALLER,
                    Proposal(
                        action="comment",
                        title=f"tell {n}",
                        incident_id=incident.id,
                        repo="acme/api",
                        params={"body": "x", "pull_number": 7},
                    ),
                )
            await services.runs.schedule()
            while await services.runs.run_due():
                pass
            found, _ = await services.runs.find(RunQuery(page=Page(limit=50)))
            assert [r.status for r in found] == [RunStatus.SUCCEEDED] * len(found)
            return sorted(r.id for r in found)
        finally:
            await services.runs.close()
            await database.dispose()

    return asyncio.run(go())


async def count_rows(database_url: str) -> dict[str, int]:
    engine = create_async_engine(database_url)
    found: dict[str, int] = {}
    async with engine.connect() as connection:
        for table in TABLES:
            query = sa.select(sa.func.count()).select_from(sa.table(table))
            found[table] = int((await connection.execute(query)).scalar_one())
    await engine.dispose()
    return found


def counts(database_url: str) -> dict[str, int]:
    return asyncio.run(count_rows(database_url))


@pytest.fixture
def retention(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DRAGON_RUN_RETENTION_COUNT", "1")
    monkeypatch.setenv("DRAGON_RUN_RETENTION_DAYS", "30")
    return cli_env


def test_runs_prune_dry_run_says_what_it_would_prune_and_deletes_nothing(retention: str) -> None:
    old = finished_runs(retention, count=3, days_ago=60)
    before = counts(retention)

    result = run("runs", "prune", "--dry-run")

    assert result.exit_code == 0, said(result)
    assert "would prune 2 run(s)" in result.stdout
    assert "beyond the newest 1 finished" in result.stdout
    assert old[0] in result.stdout
    assert old[1] in result.stdout
    assert old[2] not in result.stdout  # the newest is kept
    assert counts(retention) == before


def test_runs_prune_deletes_old_runs_beyond_the_kept_count_and_never_incidents_or_audit(
    retention: str,
) -> None:
    old = finished_runs(retention, count=3, days_ago=60)
    recent = sorted(set(finished_runs(retention, count=2, days_ago=1)) - set(old))
    before = counts(retention)

    result = run("runs", "prune")

    assert result.exit_code == 0, said(result)
    assert "pruned 3 run(s)" in result.stdout
    after = counts(retention)
    assert after["runs"] == before["runs"] - 3
    # Only runs: incidents and decisions stay, and the audit log only grew (runs.pruned).
    assert after["incidents"] == before["incidents"] == 5
    assert after["decisions"] == before["decisions"] == 5
    assert after["audit_events"] == before["audit_events"] + 1

    async def left(services: Services) -> list[str]:
        found, _ = await services.runs.find(RunQuery(page=Page(limit=50)))
        assert (await services.audit.verify()).ok
        return sorted(r.id for r in found)

    # The newest finished run is a recent one, so every run older than 30 days goes.
    assert on_store(retention, left) == recent

    again = run("runs", "prune")
    assert again.exit_code == 0, said(again)
    assert "pruned 0 run(s)" in again.stdout


def test_the_workers_hourly_retention_job_prunes_with_the_same_settings(cli_env: str) -> None:
    finished_runs(cli_env, count=3, days_ago=60)

    async def go() -> dict[str, int]:
        database = connect(cli_env, pool_size=2)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=cli_env,
            run_retention_count=1,
            run_retention_days=30,
        )
        services = build_services(settings, database, clock=system_clock)
        worker = asyncio.create_task(run_action_worker(services, poll_seconds=0.05))
        try:
            for _ in range(200):
                if (await count_rows(cli_env))["runs"] == 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await services.runs.close()
            await database.dispose()
        return await count_rows(cli_env)

    after = asyncio.run(go())
    assert after["runs"] == 1
    assert after["incidents"] == 3
    assert after["decisions"] == 3
