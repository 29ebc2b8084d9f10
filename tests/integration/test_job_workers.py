"""Production workers on procrastinate (docs/decisions/0011), with real `dragon serve` and
`dragon worker` processes on a PostgreSQL store of the test's own: every accepted batch has a
job from the same transaction or leaves its deliveries to the one waiting (0022), two workers
share one backlog, and a worker killed with SIGKILL in the middle of a batch loses nothing and
duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.integration.test_ingest_processes import (
    DRAGON,
    Launch,
    assert_audit_chain_intact,
    create_admin_key,
    dragon_env,
    every_page,
    post_github,
    run_dragon,
    workflow_run_failure,
)

SETTLE_SECONDS = 90


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """`dragon worker` processes a test started; stopped after it, however it ended."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.terminate()
    for process in started:
        try:
            await asyncio.wait_for(process.wait(), timeout=20)
        except TimeoutError:
            process.kill()
            await process.wait()


async def start_worker(
    url: str, name: str, *, tmp_path: Path, into: list[asyncio.subprocess.Process], **env: str
) -> asyncio.subprocess.Process:
    with (tmp_path / f"{name}.log").open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(DRAGON),
            "worker",
            env=dragon_env(url, **env),
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    into.append(process)
    return process


async def accept_backlog(server_url: str, *, workflows: int, first_run: int) -> set[str]:
    """`workflows` new workflows, each failing four times, posted four at a time; returns
    the delivery ids Dragon answered with."""
    accepted: set[str] = set()
    async with httpx.AsyncClient(base_url=server_url, timeout=15) as http:
        for n in range(workflows):
            responses = await asyncio.gather(
                *(
                    post_github(
                        http,
                        workflow_run_failure(
                            run_id=first_run + n,
                            attempt=attempt,
                            workflow=f"Nightly {n}",
                            branch="main",
                        ),
                        str(uuid.uuid4()),
                    )
                    for attempt in range(1, 5)
                )
            )
            assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
            accepted.update(r.json()["delivery_id"] for r in responses)
    return accepted


async def query(url: str, sql: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return list(await connection.execute(sa.text(sql)))
    finally:
        await engine.dispose()


async def assert_processed_once(
    server_url: str, admin: dict[str, str], accepted: set[str], *, workflows: int
) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=15) as http:
        for _ in range(SETTLE_SECONDS * 10):  # the shared machine may be slow
            if not await every_page(http, "/api/v1/deliveries", admin, status="pending"):
                break
            await asyncio.sleep(0.1)
        deliveries = await every_page(http, "/api/v1/deliveries", admin)
        assert {d["id"] for d in deliveries} == accepted
        for each in deliveries:
            assert each["status"] == "processed", each
            assert each["attempts"] == 1, each  # a rolled-back batch left no attempt behind
            assert len(each["result"]["signal_ids"]) == 1, each
        incidents = await every_page(http, "/api/v1/incidents", admin)
        assert sorted(i["signal_count"] for i in incidents) == [4] * workflows
        await assert_audit_chain_intact(http, admin)


async def test_accepted_batches_share_the_waiting_job_and_two_workers_share_the_backlog(
    tmp_path: Path,
    process_tests_database: str,
    launch: Launch,
    workers: list[asyncio.subprocess.Process],
) -> None:
    url = process_tests_database
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    admin = await create_admin_key(dragon_env(url))
    receiver = await launch(dragon_env(url, worker_enabled="false"), "receiver")
    accepted = await accept_backlog(receiver.url, workflows=40, first_run=8000)

    # One job waits, committed with the first batch and naming its deliveries; every batch
    # stored after it was left to it (docs/decisions/0022), so no other job was deferred.
    jobs = await query(
        url,
        "SELECT status, args FROM procrastinate_jobs WHERE task_name = 'dragon.process_deliveries'",
    )
    named = [
        d
        for _, args in jobs
        for d in (orjson.loads(args) if isinstance(args, str) else args)["delivery_ids"]
    ]
    assert [status for status, _ in jobs] == ["todo"]
    assert named
    assert set(named) < accepted

    for name in ("worker-a", "worker-b"):
        await start_worker(url, name, tmp_path=tmp_path, into=workers)
    await assert_processed_once(receiver.url, admin, accepted, workflows=40)
    # Successful jobs are deleted; none failed, none is left waiting or running.
    left = await query(
        url,
        "SELECT status, count(*) FROM procrastinate_jobs "
        "WHERE task_name = 'dragon.process_deliveries' GROUP BY status",
    )
    assert left == []
    for process in workers:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0


async def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    tmp_path: Path,
    process_tests_database: str,
    launch: Launch,
    workers: list[asyncio.subprocess.Process],
) -> None:
    url = process_tests_database
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    admin = await create_admin_key(dragon_env(url))
    receiver = await launch(dragon_env(url, worker_enabled="false"), "receiver")
    accepted = await accept_backlog(receiver.url, workflows=100, first_run=9000)

    # Kill a worker once it has settled some of the backlog and is inside another job. The
    # check and the kill cannot be atomic: if it was between two jobs, try with another one.
    counts = (
        "SELECT (SELECT count(*) FROM deliveries WHERE status = 'processed'), "
        "(SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing')"
    )
    stalled = 0
    for attempt in range(3):
        doomed = await start_worker(
            url, f"doomed-{attempt}", tmp_path=tmp_path, into=workers, worker_concurrency="1"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            [(processed, running)] = await query(url, counts)
            if processed and running > stalled:
                break
            await asyncio.sleep(0.01)
        doomed.kill()
        await doomed.wait()
        [(processed, now_stalled)] = await query(url, counts)
        if now_stalled > stalled:
            break
        stalled = now_stalled
    assert 0 < processed < len(accepted)
    assert now_stalled >= 1  # a job it was running when it died
    # Another worker finishes the backlog; the dead worker's batch was rolled back, so the
    # sweep finds its deliveries pending and settles them once.
    await start_worker(url, "survivor", tmp_path=tmp_path, into=workers)
    await assert_processed_once(receiver.url, admin, accepted, workflows=100)


async def test_a_worker_lowers_its_cpu_priority_as_configured(
    tmp_path: Path,
    process_tests_database: str,
    workers: list[asyncio.subprocess.Process],
) -> None:
    url = process_tests_database
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    process = await start_worker(url, "niced", tmp_path=tmp_path, into=workers, worker_nice="7")
    seen = ours
    for _ in range(600):  # it lowers its priority once its imports are done
        seen = os.getpriority(os.PRIO_PROCESS, process.pid)
        if seen != ours or process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    assert process.returncode is None
    assert seen == min(ours + 7, 19)
