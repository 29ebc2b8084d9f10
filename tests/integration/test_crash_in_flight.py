"""A server killed with SIGKILL while requests are in flight: the senders re-post every
delivery that got no answer, as GitHub does, and afterwards every delivery that ever got a 2xx
is stored and processed exactly once, and nothing is stored or counted twice."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from tests.integration.test_ingest_processes import (
    Launch,
    assert_audit_chain_intact,
    create_admin_key,
    dragon_env,
    every_page,
    post_github,
    run_dragon,
    workflow_run_failure,
)

SENDERS = 24
DELIVERIES = 600
KILL_AFTER = 150  # answers received before the SIGKILL
WORKFLOWS = 12  # 50 failed runs each


async def test_on_sqlite_deliveries_answered_before_a_sigkill_in_flight_count_once(
    tmp_path: Path, launch: Launch
) -> None:
    await crash_in_flight_then_resend(
        f"sqlite+aiosqlite:///{tmp_path / 'dragon.db'}", tmp_path, launch
    )


async def test_on_postgres_deliveries_answered_before_a_sigkill_in_flight_count_once(
    tmp_path: Path, process_tests_database: str, launch: Launch
) -> None:
    await crash_in_flight_then_resend(process_tests_database, tmp_path, launch)


async def crash_in_flight_then_resend(url: str, tmp_path: Path, launch: Launch) -> None:
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    admin = await create_admin_key(dragon_env(url))
    sent = {
        str(uuid.uuid4()): workflow_run_failure(
            run_id=5000 + n, attempt=1, workflow=f"Build {n % WORKFLOWS}", branch="main"
        )
        for n in range(DELIVERIES)
    }
    # The embedded worker runs too, so some deliveries are mid-processing at the crash.
    env = dragon_env(url, worker_enabled="true", worker_poll_seconds="0.2")
    first = await launch(env, "before-crash")

    answered: dict[str, str] = {}  # delivery key -> the delivery id a 2xx named
    unanswered: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for key in sent:
        queue.put_nowait(key)
    enough = asyncio.Event()

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            key = queue.get_nowait()
            try:
                response = await post_github(http, sent[key], key)
            except httpx.TransportError:
                unanswered.append(key)  # the connection died with the server
                continue
            assert response.status_code in (200, 202), response.text
            answered[key] = response.json()["delivery_id"]
            if len(answered) >= KILL_AFTER:
                enough.set()

    async def crash_when_enough() -> None:
        await enough.wait()
        await first.crash()

    async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        await asyncio.gather(crash_when_enough(), *(sender(http) for _ in range(SENDERS)))
    assert len(answered) >= KILL_AFTER
    never_sent = len(sent) - len(answered) - len(unanswered)
    assert never_sent == 0
    assert unanswered, "the kill should have cut some requests off"

    # The senders retry what got no answer: stored already (a 200 duplicate naming it) or not.
    second = await launch(env, "after-crash")
    async with httpx.AsyncClient(base_url=second.url, timeout=15) as http:
        senders = asyncio.Semaphore(SENDERS)

        async def retry(key: str) -> None:
            async with senders:
                response = await post_github(http, sent[key], key)
            assert response.status_code in (200, 202), response.text
            answered[key] = response.json()["delivery_id"]

        await asyncio.gather(*(retry(key) for key in unanswered))
        assert set(answered) == set(sent)

        for _ in range(600):
            if not await every_page(http, "/api/v1/deliveries", admin, status="pending"):
                break
            await asyncio.sleep(0.1)
        deliveries = {d["id"]: d for d in await every_page(http, "/api/v1/deliveries", admin)}
        # One stored delivery per sent one, and it is the one its 2xx named.
        assert len(deliveries) == len(sent)
        assert set(deliveries) == set(answered.values())
        for each in deliveries.values():
            assert each["status"] == "processed", each
            assert each["attempts"] == 1, each
            assert len(each["result"]["signal_ids"]) == 1, each
        incidents = await every_page(http, "/api/v1/incidents", admin)
        assert len(incidents) == WORKFLOWS
        assert sorted(i["signal_count"] for i in incidents) == [DELIVERIES // WORKFLOWS] * WORKFLOWS
        await assert_audit_chain_intact(http, admin)
