"""PostgreSQL restarted under load, on a private server this test creates (initdb into a
temporary directory, a free loopback port) and stops itself, never the machine's shared one:
during the outage senders get 503 with Retry-After (never a 500 and never a 2xx for what was
not stored), Dragon recovers by itself, and every delivery answered 2xx is processed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.test_fleet_faults import stored_deliveries
from tests.integration.test_ingest_processes import (
    Launch,
    create_admin_key,
    dragon_env,
    run_dragon,
    signed,
    wait_until_nothing_pending,
    workflow_run_failure,
)
from tests.support.ports import free_port

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/nonexistent"))


class PrivatePostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/dragon"

    def _run(self, *command: str) -> None:
        # PostgreSQL refuses to run as root; CI and this machine run tests as root.
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        prefix = [runuser, "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c max_connections=60"
        )
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.directory / "server.log"), "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin)")
    directory = Path(tempfile.mkdtemp(prefix="dragon-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PrivatePostgres(directory)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def dragon_database(private_postgres: PrivatePostgres) -> str:
    admin = private_postgres.url.rsplit("/", 1)[0] + "/postgres"
    script = (
        "import asyncio, sqlalchemy as sa\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "async def main():\n"
        f"    e = create_async_engine('{admin}', isolation_level='AUTOCOMMIT')\n"
        "    async with e.connect() as c:\n"
        "        await c.execute(sa.text('CREATE DATABASE dragon'))\n"
        "    await e.dispose()\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    assert await process.wait() == 0
    return private_postgres.url


@pytest.mark.parametrize("job_engine", ["inbox", "procrastinate"])
async def test_postgres_restarted_under_load_gives_503s_then_recovers_and_loses_nothing(
    tmp_path: Path,
    launch: Launch,
    private_postgres: PrivatePostgres,
    dragon_database: str,
    job_engine: str,
) -> None:
    env = dragon_env(
        dragon_database, worker_enabled="true", worker_poll_seconds="0.2", job_engine=job_engine
    )
    await run_dragon("migrate", env=env, cwd=tmp_path)
    admin = await create_admin_key(env)
    server = await launch(env, "api")
    statuses: list[int] = []
    accepted: dict[str, str] = {}
    stop_at = time.monotonic() + 5.0

    async def sender(offset: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            number = offset
            while time.monotonic() < stop_at:
                number += 8
                delivery = str(uuid.uuid4())
                body = workflow_run_failure(
                    run_id=70_000 + number, attempt=1, workflow=f"wf-{number % 5}", branch="main"
                )
                answer = await http.post(
                    "/webhooks/github", content=body, headers=signed(body, delivery)
                )
                statuses.append(answer.status_code)
                if answer.status_code == 503:
                    assert answer.headers["retry-after"]
                    await asyncio.sleep(0.05)
                elif 200 <= answer.status_code < 300:
                    accepted[delivery] = answer.json()["delivery_id"]

    async def outage() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(private_postgres.stop, "immediate")
        await asyncio.sleep(1.5)
        await asyncio.to_thread(private_postgres.start)

    await asyncio.gather(*(sender(i) for i in range(8)), outage())

    assert 503 in statuses  # the outage was seen and answered as such
    assert not [s for s in statuses if s >= 500 and s != 503]
    assert accepted
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        after = await http.get("/readyz")
        await wait_until_nothing_pending(http, admin)
    assert after.status_code == 200
    stored = await stored_deliveries(dragon_database)
    for delivery_id in accepted.values():
        assert stored[delivery_id][0] == "processed", delivery_id
