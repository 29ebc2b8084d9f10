"""One delivery job waits at a time on PostgreSQL (docs/decisions/0022): a batch stored while
a job is waiting is left to that job instead of deferring its own, and the job, once a worker
has it, reads the inbox only after every transaction that left deliveries to it has ended. So
a delivery committed after its job was fetched is still processed by that job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dragon.services.container import Services
from dragon.settings import Settings
from dragon.store.tables import deliveries
from dragon.workers.jobs import DELIVERY_JOBS, job_app, run_job_worker
from tests.api.test_ingestion import fixture, post_github
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="procrastinate jobs live in PostgreSQL")

WAIT_SECONDS = 60  # a bound for a busy machine, not a timing expectation
# store.inbox's deferring lock, as pg_locks shows a two-key advisory lock.
DEFERRING_LOCK_WAITS = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND classid = 1146241351 AND objid = 22 AND objsubid = 2"
)
JOBS = (
    "SELECT status::text, args FROM procrastinate_jobs "
    "WHERE task_name = 'dragon.process_deliveries' ORDER BY id"
)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(settings.database_url)
    yield made
    await made.dispose()


async def rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(sa.text(sql)))


def args_of(job: Any) -> Any:
    _, args = job
    return orjson.loads(args) if isinstance(args, str) else args


async def statuses(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as connection:
        found = await connection.execute(sa.select(deliveries.c.id, deliveries.c.status))
        return {row.id: row.status for row in found}


async def wait_until(engine: AsyncEngine, sql: str, *, above: int = 0) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        [(count,)] = await rows(engine, sql)
        if count > above:
            return int(count)
        await asyncio.sleep(0.02)
    return 0


async def store_second_delivery(held: AsyncConnection, first_id: str) -> str:
    """What the inbox does for a batch, in a transaction the caller keeps open: the row (a
    copy of the first under a new key) and its deferral."""
    first = (
        (await held.execute(sa.select(deliveries).where(deliveries.c.id == first_id)))
        .mappings()
        .one()
    )
    second_id = f"{first_id}-later"
    await held.execute(
        sa.insert(deliveries).values({**first, "id": second_id, "delivery_key": second_id})
    )
    await DELIVERY_JOBS.defer(held, [second_id])
    return second_id


async def test_a_delivery_left_to_the_waiting_job_is_processed_by_it_though_committed_after_the_job_started(  # noqa: E501
    client: httpx.AsyncClient, services: Services, settings: Settings, engine: AsyncEngine
) -> None:
    accepted = await post_github(
        client, fixture("github", "workflow_run.completed.failure"), "workflow_run"
    )
    assert accepted.status_code == 202
    first_id = accepted.json()["delivery_id"]

    async with engine.connect() as held:
        await held.begin()
        second_id = await store_second_delivery(held, first_id)
        # A job was waiting: the batch added none, and left its delivery to that one.
        jobs = await rows(engine, JOBS)
        assert [status for status, _ in jobs] == ["todo"]
        assert args_of(jobs[0]) == {"delivery_ids": [first_id]}

        worker = asyncio.create_task(
            run_job_worker(job_app(services, database_url=settings.database_url), concurrency=1)
        )
        try:
            # The worker fetched the job, and the job waits for the open transaction before
            # it reads the inbox: nothing is processed yet, not even the job's own delivery.
            assert await wait_until(engine, DEFERRING_LOCK_WAITS) == 1
            assert [status for status, _ in await rows(engine, JOBS)] == ["doing"]
            assert await statuses(engine) == {first_id: "pending"}
            await held.commit()

            # That job alone (no other was deferred) processes both.
            ids = ", ".join(f"'{i}'" for i in (first_id, second_id))
            done = f"SELECT count(*) FROM deliveries WHERE status = 'processed' AND id IN ({ids})"  # noqa: S608 - the test's own ids
            assert await wait_until(engine, done, above=1) == 2
            # It succeeded (procrastinate deletes it once the task has returned).
            no_job = (
                "SELECT count(*) FROM (SELECT 1) AS one WHERE NOT EXISTS (SELECT 1 FROM "
                "procrastinate_jobs WHERE task_name = 'dragon.process_deliveries')"
            )
            assert await wait_until(engine, no_job) == 1
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


async def test_the_inbox_defers_a_job_only_when_none_is_waiting(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async def accept(run_id: int) -> str:
        payload = fixture("github", "workflow_run.completed.failure")
        payload["workflow_run"]["id"] = run_id
        response = await post_github(client, payload, "workflow_run")
        assert response.status_code == 202
        return str(response.json()["delivery_id"])

    first_id = await accept(7001)
    jobs = await rows(engine, JOBS)
    assert [(j[0], args_of(j)) for j in jobs] == [("todo", {"delivery_ids": [first_id]})]
    await accept(7002)  # left to the waiting job
    assert len(await rows(engine, JOBS)) == 1

    # The waiting job was fetched by a worker (it is running): the next batch needs its own.
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "UPDATE procrastinate_jobs SET status = 'doing' "
                "WHERE task_name = 'dragon.process_deliveries'"
            )
        )
    third_id = await accept(7003)
    jobs = await rows(engine, JOBS)
    assert [(j[0], args_of(j)) for j in jobs] == [
        ("doing", {"delivery_ids": [first_id]}),
        ("todo", {"delivery_ids": [third_id]}),
    ]
    # A redelivery stores nothing pending, so it defers nothing either.
    async with engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM procrastinate_jobs WHERE status = 'todo'"))
    payload = fixture("github", "workflow_run.completed.failure")
    payload["workflow_run"]["id"] = 7003
    [(key,)] = await rows(engine, f"SELECT delivery_key FROM deliveries WHERE id = '{third_id}'")  # noqa: S608
    again = await post_github(client, payload, "workflow_run", key)
    assert again.json()["delivery_id"] == third_id
    assert [j[0] for j in await rows(engine, JOBS)] == ["doing"]


async def test_a_job_holds_the_deferring_lock_for_no_round_trip_so_accepts_never_wait_on_the_worker(
    engine: AsyncEngine,
) -> None:
    # A worker may run at a lower CPU priority than the API (DRAGON_WORKER_NICE): were the
    # lock still held once the wait returned, every accept would wait for that worker to be
    # scheduled again and commit.
    async with engine.connect() as job:
        await job.begin()
        await DELIVERY_JOBS.await_deferring(job)
        async with engine.connect() as accept:
            await accept.begin()
            taken = await accept.scalar(
                sa.text("SELECT pg_try_advisory_xact_lock_shared(1146241351, 22)")
            )
            assert taken is True
        await job.commit()


async def test_the_wait_for_deferring_transactions_still_waits_for_one_in_flight(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as deferring:
        await deferring.begin()
        await deferring.execute(sa.text("SELECT pg_advisory_xact_lock_shared(1146241351, 22)"))
        async with engine.connect() as job:
            waiting = asyncio.create_task(DELIVERY_JOBS.await_deferring(job))
            assert await wait_until(engine, DEFERRING_LOCK_WAITS) == 1
            assert not waiting.done()
            await deferring.commit()
            await asyncio.wait_for(waiting, WAIT_SECONDS)


async def test_a_job_cancelled_while_it_waits_leaves_the_deferring_lock_to_nobody(
    engine: AsyncEngine,
) -> None:
    held_by_anyone = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = 1146241351 AND objid = 22 AND objsubid = 2"
    )
    async with engine.connect() as deferring:
        await deferring.begin()
        await deferring.execute(sa.text("SELECT pg_advisory_xact_lock_shared(1146241351, 22)"))
        async with engine.connect() as job:
            waiting = asyncio.create_task(DELIVERY_JOBS.await_deferring(job))
            assert await wait_until(engine, DEFERRING_LOCK_WAITS) == 1
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await deferring.commit()
    # An accept's shared lock and a later job's exclusive one are both free to take.
    [(held,)] = await rows(engine, held_by_anyone)
    assert held == 0
    async with engine.connect() as later_job:
        await asyncio.wait_for(DELIVERY_JOBS.await_deferring(later_job), WAIT_SECONDS)
