"""Measures the decision spine over real HTTP on loopback: proposals and approvals per second,
with p50/p99 latency, against a `dragon serve` process this script starts and stops.

    .venv/bin/python bench/bench_core.py [--database-url URL] [--requests 2000] [--concurrency 32]

Defaults to a fresh SQLite file under var/bench/. Prints one line per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from processes import wait_ready

ROOT = Path(__file__).resolve().parents[1]
DRAGON = Path(sys.executable).with_name("dragon")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU the process has used so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", maxsplit=1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_phase(
    name: str, total: int, concurrency: int, make_request: object, *, server_pid: int
) -> list[httpx.Response]:
    latencies: list[float] = []
    responses: list[httpx.Response] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            response = await make_request(i)  # type: ignore[operator]
            latencies.append((time.perf_counter() - started) * 1000)
            responses.append(response)

    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_ms = (cpu_seconds(server_pid) - cpu_before) * 1000 / total
    failed = Counter(r.status_code for r in responses if r.status_code >= 400)
    codes = ", ".join(f"{n} x {code}" for code, n in sorted(failed.items()))
    print(
        f"{name:<28} {total / elapsed:8.0f} req/s   p50 {statistics.median(latencies):6.1f} ms"
        f"   p99 {percentile(latencies, 0.99):6.1f} ms   server CPU {cpu_ms:5.2f} ms/req"
        f"   errors {failed.total()}" + (f" ({codes})" if codes else "")
    )
    return responses


def create_key(env: dict[str, str], name: str, role: str) -> str:
    out = subprocess.run(
        [str(DRAGON), "keys", "create", "--name", name, "--role", role],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def prepare(url: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """Fresh schema, a developer key and two approver keys."""
    if url.startswith("postgresql"):
        reset = (
            "import asyncio, os, sqlalchemy as sa\n"
            "from sqlalchemy.ext.asyncio import create_async_engine\n"
            "async def reset():\n"
            "    engine = create_async_engine(os.environ['DRAGON_DATABASE_URL'])\n"
            "    async with engine.begin() as c:\n"
            "        await c.execute(sa.text('DROP SCHEMA public CASCADE'))\n"
            "        await c.execute(sa.text('CREATE SCHEMA public'))\n"
            "    await engine.dispose()\n"
            "asyncio.run(reset())\n"
        )
        subprocess.run([sys.executable, "-c", reset], env=env, check=True)
    subprocess.run([str(DRAGON), "migrate"], env=env, check=True, capture_output=True)
    developer = create_key(env, "bench-dev", "developer")
    return developer, [create_key(env, f"bench-approver-{i}", "approver") for i in range(2)]


async def load(
    args: argparse.Namespace, url: str, developer: str, approvers: list[str], *, server_pid: int
) -> None:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{args.port}",
        limits=httpx.Limits(max_connections=args.concurrency),
        timeout=30,
    ) as http:
        print(
            f"database: {url.split(':', maxsplit=1)[0]}, {args.requests} requests, "
            f"{args.concurrency} concurrent clients"
        )
        dev = {"Authorization": f"Bearer {developer}"}
        created = await http.post(
            "/api/v1/incidents", json={"title": "bench", "severity": "SEV2"}, headers=dev
        )
        incident = created.json()["id"]

        async def propose(i: int) -> httpx.Response:
            return await http.post(
                "/api/v1/decisions",
                json={
                    "incident_id": incident,
                    "action": "open_revert_pr",
                    "title": f"revert {i}",
                    "environment": "production",
                },
                headers=dev,
            )

        proposed = await run_phase(
            "propose (pending, 2 appr.)",
            args.requests,
            args.concurrency,
            propose,
            server_pid=server_pid,
        )
        ids = [r.json()["id"] for r in proposed if r.status_code == 201]
        for n, key in enumerate(approvers, start=1):

            async def approve(i: int, key: str = key) -> httpx.Response:
                return await http.post(
                    f"/api/v1/decisions/{ids[i]}/approve",
                    json={"justification": "bench approval"},
                    headers={"Authorization": f"Bearer {key}"},
                )

            await run_phase(
                f"approve (approver {n})",
                len(ids),
                args.concurrency,
                approve,
                server_pid=server_pid,
            )

        async def read(i: int) -> httpx.Response:
            return await http.get("/api/v1/decisions?limit=50", headers=dev)

        await run_phase(
            "list decisions (50/page)",
            args.requests,
            args.concurrency,
            read,
            server_pid=server_pid,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    workdir = ROOT / "var" / "bench"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    env = {
        **os.environ,
        "DRAGON_DATABASE_URL": url,
        "DRAGON_LOG_LEVEL": "warning",
        "DRAGON_BOOTSTRAP_ADMIN": "false",
        "DRAGON_PORT": str(args.port),
        # The approvals limit (20 an hour per principal) would refuse all but the first 20 of
        # each approver's approvals: the bench measures the decision spine, not the limiter.
        "DRAGON_RATE_LIMITS": "playground=10/hour,approvals=1000000/hour,generate=50/hour",
    }
    developer, approvers = prepare(url, env)
    server = subprocess.Popen([str(DRAGON), "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready(args.port)
        asyncio.run(load(args, url, developer, approvers, server_pid=server.pid))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    started = time.perf_counter()
    result = subprocess.run(
        [str(DRAGON), "audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    print(f"audit verify: {result.stdout.strip()} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
