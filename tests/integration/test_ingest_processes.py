"""Ingestion's guarantees with real `dragon serve` processes: a delivery answered 202 survives a
SIGKILL before it was processed, and servers sharing one PostgreSQL store and correlate each
vendor event exactly once, however their requests and workers interleave.

Each test starts its own servers on free loopback ports and stops them in teardown; the servers'
output goes to files in the test's tmp_path, quoted when a server fails to start.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.domain.enums import Role
from tests.support.api_keys import issue_keys
from tests.support.dragon_serve import DRAGON, DragonServer, start_dragon_serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GITHUB_SECRET = "process-tests-github-secret-0123456789ab"  # 40 characters
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_SERVER = f"postgresql+asyncpg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}"
PROCESS_TESTS_DATABASE = "dragon_proc_tests"
SETTLE_SECONDS = 30.0
# A bound, not an expected time: a one-shot command takes a second or two on an idle machine,
# and many times that while parallel test workers and other load share its two cores.
COMMAND_SECONDS = 120.0
WORKFLOWS = 50


def dragon_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `dragon` command: this process's, minus any DRAGON_ setting the
    suite itself runs under (its database above all), plus the test's own."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DRAGON_")}
    env.update(
        DRAGON_DATABASE_URL=database_url,
        DRAGON_GITHUB_WEBHOOK_SECRET=GITHUB_SECRET,
        DRAGON_BOOTSTRAP_ADMIN="false",
        DRAGON_LOG_FORMAT="json",
        DRAGON_DB_POOL_SIZE="20",
        # Ingestion alone is measured here: triage's own loop would add audit events meanwhile.
        DRAGON_TRIAGE_ENABLED="false",
    )
    env.update({f"DRAGON_{name.upper()}": value for name, value in settings.items()})
    return env


async def run_dragon(*args: str, env: dict[str, str], cwd: Path) -> str:
    """Run a one-shot `dragon` command to completion; returns its stdout."""
    process = await asyncio.create_subprocess_exec(
        str(DRAGON),
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=COMMAND_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"`dragon {' '.join(args)}` did not finish in {COMMAND_SECONDS:.0f} s")
    assert process.returncode == 0, (
        f"`dragon {' '.join(args)}` exited {process.returncode}:\n{stderr.decode()}"
    )
    return stdout.decode()


async def create_admin_key(env: dict[str, str]) -> dict[str, str]:
    """An admin key in the store `env` names, issued in-process (the CLI's `keys create` is
    tested on its own); returns the auth header."""
    keys = await issue_keys(env["DRAGON_DATABASE_URL"], {"admin": Role.ADMIN}, prefix="process")
    return {"Authorization": f"Bearer {keys['admin']}"}


Launch = Callable[[dict[str, str], str], Awaitable[DragonServer]]


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """Starts `dragon serve` processes and waits until each is ready; stops them all after the
    test, however it ended."""
    started: list[DragonServer] = []

    async def start(env: dict[str, str], name: str) -> DragonServer:
        server = await start_dragon_serve(env, directory=tmp_path, name=name)
        started.append(server)
        return server

    yield start
    await asyncio.gather(*(server.stop() for server in started))


def workflow_run_failure(*, run_id: int, attempt: int, workflow: str, branch: str) -> bytes:
    """GitHub's example failed workflow_run, as one attempt of one run of `workflow` on
    `branch`; the fingerprint follows workflow and branch, the signal follows run and attempt.
    Each run has a commit of its own, so incidents are not linked as `same_commit`."""
    payload: dict[str, Any] = orjson.loads(
        (FIXTURES / "github" / "workflow_run.completed.failure.json").read_bytes()
    )
    payload = copy.deepcopy(payload)
    run = payload["workflow_run"]
    commit = hashlib.sha256(str(run_id).encode()).hexdigest()[:40]
    run.update(id=run_id, run_attempt=attempt, name=workflow, head_branch=branch, head_sha=commit)
    return orjson.dumps(payload)


def signed(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-github-event": "workflow_run",
        "x-github-delivery": delivery,
        "x-hub-signature-256": f"sha256={digest}",
    }


async def post_github(http: httpx.AsyncClient, body: bytes, delivery: str) -> httpx.Response:
    return await http.post("/webhooks/github", content=body, headers=signed(body, delivery))


async def every_page(
    http: httpx.AsyncClient, path: str, admin: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": "200", **({"cursor": cursor} if cursor else {})}
        response = await http.get(path, params=query, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def wait_until_nothing_pending(http: httpx.AsyncClient, admin: dict[str, str]) -> float:
    """Polls the inbox until no delivery is pending; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_SECONDS:
        if not await every_page(http, "/api/v1/deliveries", admin, status="pending"):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    pending = await every_page(http, "/api/v1/deliveries", admin, status="pending")
    pytest.fail(
        f"{len(pending)} deliveries still pending after {SETTLE_SECONDS:.0f} s, e.g. "
        f"{[(d['id'], d['attempts'], d['last_error']) for d in pending[:3]]}"
    )


async def assert_audit_chain_intact(http: httpx.AsyncClient, admin: dict[str, str]) -> int:
    verified = await http.get("/api/v1/audit/verify", headers=admin)
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "ok", verified.json()
    checked: int = verified.json()["checked"]
    return checked


async def test_every_delivery_answered_202_survives_a_sigkill_and_is_processed_once(
    tmp_path: Path, launch: Launch
) -> None:
    database = tmp_path / "dragon.db"
    url = f"sqlite+aiosqlite:///{database}"
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    admin = await create_admin_key(dragon_env(url))

    # 8 workflows (4 names on 2 branches), each run failing 5 attempts: 40 signals, 8 incidents.
    workflows = [
        (name, branch)
        for name in ("CI", "Lint", "Docs", "Deploy")
        for branch in ("master", "release")
    ]
    sent = {
        str(uuid.uuid4()): workflow_run_failure(
            run_id=9000 + number, attempt=attempt, workflow=name, branch=branch
        )
        for number, (name, branch) in enumerate(workflows)
        for attempt in range(1, 6)
    }

    first = await launch(dragon_env(url, worker_enabled="false"), "before-crash")
    async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        responses = await asyncio.gather(
            *(post_github(http, body, delivery) for delivery, body in sent.items())
        )
    await first.crash()

    assert [r.status_code for r in responses] == [202] * len(sent), [r.text for r in responses]
    accepted = {
        delivery: r.json()["delivery_id"] for delivery, r in zip(sent, responses, strict=True)
    }
    assert all(r.json()["status"] == "accepted" for r in responses)
    assert len(set(accepted.values())) == len(sent)

    # At the moment of the crash every acknowledged delivery was committed and still pending.
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT id, status FROM deliveries"))
            stored = {str(delivery_id): str(status) for delivery_id, status in rows}
            incidents_before = await connection.scalar(sa.text("SELECT count(*) FROM incidents"))
    finally:
        await engine.dispose()
    assert stored == dict.fromkeys(accepted.values(), "pending")
    assert incidents_before == 0

    second = await launch(
        dragon_env(url, worker_enabled="true", worker_poll_seconds="0.2"), "after-crash"
    )
    async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
        await wait_until_nothing_pending(http, admin)

        deliveries = {d["id"]: d for d in await every_page(http, "/api/v1/deliveries", admin)}
        assert set(deliveries) == set(accepted.values())
        for each in deliveries.values():
            assert each["status"] == "processed", each
            assert each["attempts"] == 1, each
            assert len(each["result"]["signal_ids"]) == 1, each

        incidents = await every_page(http, "/api/v1/incidents", admin)
        assert len(incidents) == len(workflows)
        assert len({i["fingerprint"] for i in incidents}) == len(workflows)
        assert sorted(i["signal_count"] for i in incidents) == [5] * len(workflows)
        assert sum(i["signal_count"] for i in incidents) == len(accepted)
        assert {i["branch"] for i in incidents} == {"master", "release"}
        checked = await assert_audit_chain_intact(http, admin)
        assert checked >= len(accepted)  # one incident.created or signal_added per signal

        # GitHub redelivers some of them: each answer names the original; nothing changes.
        redelivered = list(sent)[::10]
        again = await asyncio.gather(
            *(post_github(http, sent[delivery], delivery) for delivery in redelivered)
        )
        for delivery, response in zip(redelivered, again, strict=True):
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "duplicate"
            assert response.json()["delivery_id"] == accepted[delivery]
            assert response.json()["delivery_status"] == "processed"
        await asyncio.sleep(0.5)  # two worker polls: time enough to do anything it would do
        assert await every_page(http, "/api/v1/deliveries", admin, status="pending") == []
        assert len(await every_page(http, "/api/v1/deliveries", admin)) == len(accepted)
        assert await every_page(http, "/api/v1/incidents", admin) == incidents
        assert await assert_audit_chain_intact(http, admin) == checked


async def postgres_reachable() -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(POSTGRES_HOST, POSTGRES_PORT), timeout=2
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


@pytest.fixture
async def process_tests_database() -> AsyncIterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards. Its name is unique, so runs
    of this module that overlap (two people, two checkouts) never reset each other's store."""
    if not await postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable on {POSTGRES_HOST}:{POSTGRES_PORT}")
    name = f"{PROCESS_TESTS_DATABASE}_{uuid.uuid4().hex[:12]}"
    server = create_async_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as connection:
            await connection.execute(sa.text(f"CREATE DATABASE {name}"))
        yield f"{POSTGRES_SERVER}/{name}"
        async with server.connect() as connection:
            await connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        await server.dispose()


async def test_two_servers_on_one_postgres_store_and_correlate_each_delivery_once(
    tmp_path: Path, process_tests_database: str, launch: Launch
) -> None:
    url = process_tests_database
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    admin = await create_admin_key(dragon_env(url))
    env = dragon_env(url, worker_enabled="true", worker_poll_seconds="0.2")
    servers = await asyncio.gather(launch(env, "server-a"), launch(env, "server-b"))

    async with (
        httpx.AsyncClient(base_url=servers[0].url, timeout=15) as a,
        httpx.AsyncClient(base_url=servers[1].url, timeout=15) as b,
    ):
        both = (a, b)

        # One delivery, sent 50 times at once to both servers: stored once, processed once.
        delivery = str(uuid.uuid4())
        body = workflow_run_failure(run_id=7001, attempt=1, workflow="CI", branch="master")
        responses = await asyncio.gather(
            *(post_github(both[n % 2], body, delivery) for n in range(50))
        )
        assert sorted(r.status_code for r in responses) == [200] * 49 + [202], [
            r.text for r in responses if r.status_code not in (200, 202)
        ]
        assert len({r.json()["delivery_id"] for r in responses}) == 1
        assert {r.json()["status"] for r in responses if r.status_code == 200} == {"duplicate"}
        await wait_until_nothing_pending(a, admin)
        [stored] = await every_page(a, "/api/v1/deliveries", admin)
        assert stored["status"] == "processed"
        assert stored["attempts"] == 1
        [incident] = await every_page(b, "/api/v1/incidents", admin)
        assert incident["signal_count"] == 1

        # 30 attempts of one other workflow, at once across both servers and both workers:
        # correlation is serialised per fingerprint, so they all land on one incident.
        bodies = {
            str(uuid.uuid4()): workflow_run_failure(
                run_id=7002, attempt=attempt, workflow="Deploy", branch="master"
            )
            for attempt in range(1, 31)
        }
        responses = await asyncio.gather(
            *(post_github(both[n % 2], body, key) for n, (key, body) in enumerate(bodies.items()))
        )
        assert [r.status_code for r in responses] == [202] * 30, [r.text for r in responses]
        await wait_until_nothing_pending(b, admin)

        deliveries = await every_page(a, "/api/v1/deliveries", admin)
        assert len(deliveries) == 31
        for each in deliveries:
            assert each["status"] == "processed", each
            assert each["attempts"] == 1, each
            assert len(each["result"]["signal_ids"]) == 1, each
        incidents = await every_page(a, "/api/v1/incidents", admin)
        assert len(incidents) == 2
        [deploy] = [i for i in incidents if i["id"] != incident["id"]]
        assert deploy["signal_count"] == 30
        assert deploy["status"] == "open"
        assert {
            tuple(d["result"]["incident_ids"]) for d in deliveries if d["id"] != stored["id"]
        } == {(deploy["id"],)}
        assert [i["signal_count"] for i in incidents if i["id"] == incident["id"]] == [1]

        # Ten new workflows fail one after another, each reported four times at once to both
        # servers, so both workers can reach a workflow before its incident exists: each still
        # ends with one incident, and no delivery needed a second attempt.
        for n in range(10):
            attempts = [
                workflow_run_failure(
                    run_id=7100 + n, attempt=attempt, workflow=f"Nightly {n}", branch="master"
                )
                for attempt in range(1, 5)
            ]
            responses = await asyncio.gather(
                *(
                    post_github(both[m % 2], body, str(uuid.uuid4()))
                    for m, body in enumerate(attempts)
                )
            )
            assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
        await wait_until_nothing_pending(a, admin)
        deliveries = await every_page(b, "/api/v1/deliveries", admin)
        assert len(deliveries) == 31 + 40
        for each in deliveries:
            assert each["status"] == "processed", each
            assert each["attempts"] == 1, each
        nightly = [
            i
            for i in await every_page(b, "/api/v1/incidents", admin)
            if i["id"] not in {incident["id"], deploy["id"]}
        ]
        assert sorted(i["signal_count"] for i in nightly) == [4] * 10
        await assert_audit_chain_intact(b, admin)


async def test_two_workers_draining_one_backlog_open_each_incident_once(
    tmp_path: Path, process_tests_database: str, launch: Launch
) -> None:
    url = process_tests_database
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    admin = await create_admin_key(dragon_env(url))

    # A backlog taken in while no worker runs: fifty new workflows, each failing four times,
    # stored workflow after workflow, so neighbouring due deliveries share a fingerprint. It is
    # about a second of work, longer than the two servers' start-up times differ.
    receiver = await launch(dragon_env(url, worker_enabled="false"), "receiver")
    async with httpx.AsyncClient(base_url=receiver.url, timeout=15) as http:
        for n in range(WORKFLOWS):
            responses = await asyncio.gather(
                *(
                    post_github(
                        http,
                        workflow_run_failure(
                            run_id=8000 + n, attempt=attempt, workflow=f"Nightly {n}", branch="main"
                        ),
                        str(uuid.uuid4()),
                    )
                    for attempt in range(1, 5)
                )
            )
            assert [r.status_code for r in responses] == [202] * 4, [r.text for r in responses]
    await receiver.stop()

    # Two workers start on it together and claim from the same due list (SKIP LOCKED): each
    # delivery is processed by one of them, once, and each workflow has one incident.
    env = dragon_env(url, worker_enabled="true", worker_poll_seconds="0.2")
    servers = await asyncio.gather(launch(env, "worker-a"), launch(env, "worker-b"))
    async with httpx.AsyncClient(base_url=servers[0].url, timeout=15) as http:
        await wait_until_nothing_pending(http, admin)
        deliveries = await every_page(http, "/api/v1/deliveries", admin)
        assert len(deliveries) == WORKFLOWS * 4
        for each in deliveries:
            assert each["status"] == "processed", each
            assert each["attempts"] == 1, each  # no collision between the workers, no retry
        incidents = await every_page(http, "/api/v1/incidents", admin)
        assert sorted(i["signal_count"] for i in incidents) == [4] * WORKFLOWS
        await assert_audit_chain_intact(http, admin)


async def test_a_separate_dragon_worker_processes_what_an_accept_only_server_stored(
    tmp_path: Path, launch: Launch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dragon.db'}"
    await run_dragon("migrate", env=dragon_env(url), cwd=tmp_path)
    admin = await create_admin_key(dragon_env(url))
    server = await launch(dragon_env(url, worker_enabled="false"), "accept-only")
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = await asyncio.create_subprocess_exec(
            str(DRAGON),
            "worker",
            env=dragon_env(url, worker_poll_seconds="0.2"),
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for attempt in range(1, 4):
                body = workflow_run_failure(
                    run_id=7100, attempt=attempt, workflow="CI", branch="master"
                )
                response = await post_github(http, body, str(uuid.uuid4()))
                assert response.status_code == 202, response.text
            await wait_until_nothing_pending(http, admin)
            listed = await http.get("/api/v1/incidents", headers=admin)
            [incident] = listed.json()["items"]
            assert incident["signal_count"] == 3
    finally:
        if worker.returncode is None:
            worker.terminate()
        code = await asyncio.wait_for(worker.wait(), timeout=15)
    assert code == 0, log.read_text(errors="replace")[-2000:]
