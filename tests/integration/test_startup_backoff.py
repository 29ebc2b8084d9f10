"""Start-up against a store that never comes: `dragon serve` (one process or several) and
`dragon worker` retry with exponential backoff, serve nothing but probes meanwhile, and after
DRAGON_STARTUP_TIMEOUT_SECONDS give up with a clear final error and exit 4, so an orchestrator
restarts or flags them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from tests.integration.test_ingest_processes import DRAGON, dragon_env
from tests.support.ports import free_port

UNREACHABLE = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/dragon"


async def run_until_exit(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(DRAGON),
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its server processes go with it when the test gives up
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        pytest.fail(f"`dragon {' '.join(args)}` did not give up within 60 s")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def events(output: str) -> list[dict[str, object]]:
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


async def test_serve_and_worker_back_off_then_give_up_with_a_clear_error(tmp_path: Path) -> None:
    env = dragon_env(UNREACHABLE, startup_timeout_seconds="3", port=str(free_port()))
    (serve_code, _, serve_log), (worker_code, _, worker_err) = await asyncio.gather(
        run_until_exit("serve", "--host", "127.0.0.1", env=env, cwd=tmp_path),
        run_until_exit("worker", env=env, cwd=tmp_path),
    )

    assert serve_code == 4
    served = events(serve_log)
    attempts = [e for e in served if e["event"] == "store_not_ready"]
    assert len(attempts) >= 2  # retried, not given up at the first failure
    (final,) = [e for e in served if e["event"] == "startup_failed"]
    assert str(final["checks"]).count("unreachable") == 1
    assert "DRAGON_DATABASE_URL" in str(final["hint"])
    assert "gave up starting" in serve_log

    assert worker_code == 4
    waits = [e["retry_in_seconds"] for e in events(worker_err) if e["event"] == "store_not_ready"]
    assert waits[:2] == [1.0, 2.0]  # exponential
    assert "dragon worker gave up starting after 3 s" in worker_err
    assert "database: unreachable" in worker_err


async def test_serve_with_several_processes_gives_up_as_one_and_exits_4(tmp_path: Path) -> None:
    port = free_port()
    env = dragon_env(UNREACHABLE, startup_timeout_seconds="3", port=str(port))

    code, _, log = await run_until_exit(
        "serve", "--host", "127.0.0.1", "--workers", "2", env=env, cwd=tmp_path
    )

    assert code == 4
    finals = [e for e in events(log) if e["event"] == "startup_failed"]
    assert finals  # the process that gave up first says why; the supervisor then stops all
    assert all("DRAGON_DATABASE_URL" in str(final["hint"]) for final in finals)
    assert "Dragon gave up starting: the store stayed unusable" in " ".join(log.split())
    # No server process outlived its supervisor: nothing accepts on the port any more.
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
