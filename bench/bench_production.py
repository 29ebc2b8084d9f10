"""Dragon in production mode on this machine: two `dragon serve` replicas and two `dragon worker`
processes sharing PostgreSQL and a private redis-server, driven over loopback.

    make bench-production
    .venv/bin/python bench/bench_production.py [--seconds 10] [--connections 32] \
        [--incidents 1000000] [--soak 60]

Prints, each with the `uptime` load average of the moment:
- ingest throughput and p50/p99 of signed 10 KB GitHub deliveries (wrk, one per replica), beside
  two bare ASGI processes measured the same way in the same run (the ratio);
- end-to-end latency from acceptance to processed (incident opened or updated), p50/p99, from the
  inbox's own received_at/processed_at of every delivery of the run;
- listing and filtering incidents with --incidents rows in the store, p50/p99 of 200 requests each;
- resident memory of every process at the start and end of a --soak second sustained load.
Nothing here is asserted; figures are reported (docs/operations.md, the team notes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from bench_ingest import SECRET, WRK, WRK_SCRIPT, delivery_body, free_port, run_wrk, wait_ready

ROOT = Path(__file__).resolve().parents[1]
DRAGON = Path(sys.executable).with_name("dragon")
UVICORN = Path(sys.executable).with_name("uvicorn")
SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
DATABASE = "dragon_prod_bench"


def load() -> str:
    return os.getloadavg().__repr__()


def sql(statement: str, *, database: str = "postgres") -> None:
    script = (
        "import asyncio, sys, sqlalchemy as sa\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "async def main():\n"
        f"    e = create_async_engine('{SERVER}/{database}', isolation_level='AUTOCOMMIT')\n"
        "    async with e.connect() as c:\n"
        "        for s in sys.argv[1].split(';;'):\n"
        "            await c.execute(sa.text(s))\n"
        "    await e.dispose()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script, statement], check=True)


def query(statement: str) -> list[tuple[object, ...]]:
    script = (
        "import asyncio, sys, json, sqlalchemy as sa\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "async def main():\n"
        f"    e = create_async_engine('{SERVER}/{DATABASE}')\n"
        "    async with e.connect() as c:\n"
        "        rows = (await c.execute(sa.text(sys.argv[1]))).all()\n"
        "    await e.dispose()\n"
        "    print(json.dumps([list(r) for r in rows], default=str))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, statement], check=True, capture_output=True, text=True
    ).stdout
    return [tuple(r) for r in json.loads(out)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk_pair(
    ports: list[int], path: str, script: Path, args: argparse.Namespace
) -> dict[str, float]:
    """One wrk per replica at once (a load balancer's spread): summed rate, worst p99."""
    results: list[dict[str, float]] = []

    async def run_all() -> None:
        loop = asyncio.get_running_loop()
        results.extend(
            await asyncio.gather(
                *(loop.run_in_executor(None, run_wrk, port, path, script, args) for port in ports)
            )
        )

    asyncio.run(run_all())
    return {
        "rate": sum(r["rate"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "errors": sum(r["errors"] for r in results),
    }


def line(label: str, result: dict[str, float], bare: dict[str, float] | None = None) -> None:
    ratio = f"  {result['rate'] / bare['rate']:.2f} of bare" if bare else ""
    print(
        f"{label:<46} {result['rate']:8.0f}/s  p50 {result['p50']:6.1f} ms  "
        f"p99 {result['p99']:7.1f} ms  non-2xx {result['errors']:.0f}{ratio}  load {load()}",
        flush=True,
    )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed_incidents(count: int) -> None:
    started = time.monotonic()
    sql(
        "INSERT INTO incidents (id, title, description, severity, status, source, repo, labels,"
        " signal_count, created_by, created_at, updated_at, first_seen_at, last_seen_at) "
        "SELECT 'inc_' || lpad(to_hex(1600000000000 + i), 12, '0') || lpad(to_hex(i), 16, '0'),"
        " 'bench incident ' || i, '', (ARRAY['SEV1','SEV2','SEV3','SEV4'])[1 + i % 4],"
        " (ARRAY['open','acknowledged','resolved'])[1 + i % 3],"
        " (ARRAY['github','gitlab','jenkins','alertmanager','api'])[1 + i % 5],"
        " 'org/repo-' || (i % 100), '{}', 1, 'prn_bench', now(), now(), now(), now() "
        "FROM generate_series(1, :count) AS i;;ANALYZE incidents".replace(":count", str(count)),
        database=DATABASE,
    )
    print(f"seeded {count} incidents in {time.monotonic() - started:.0f} s", flush=True)


def listing(port: int, admin: str) -> None:
    headers = {"Authorization": f"Bearer {admin}"}
    cases = {
        "list newest 50": {"limit": "50"},
        "filter status=open": {"status": "open", "limit": "50"},
        "filter severity=SEV1": {"severity": "SEV1", "limit": "50"},
        "filter repo=org/repo-7": {"repo": "org/repo-7", "limit": "50"},
        "filter status=resolved&source=jenkins": {
            "status": "resolved",
            "source": "jenkins",
            "limit": "50",
        },
    }
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for label, params in cases.items():
            samples = []
            for _ in range(200):
                started = time.perf_counter()
                answer = http.get("/api/v1/incidents", params=params, headers=headers)
                samples.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
            page = http.get("/api/v1/incidents", params=params, headers=headers).json()
            cursor = page["next_cursor"]
            deep = []
            for _ in range(50):  # keyset pages further down
                started = time.perf_counter()
                page = http.get(
                    "/api/v1/incidents", params={**params, "cursor": cursor}, headers=headers
                ).json()
                deep.append((time.perf_counter() - started) * 1000)
                cursor = page["next_cursor"] or cursor
            print(
                f"{label:<40} p50 {percentile(samples, 0.5):6.1f} ms  "
                f"p99 {percentile(samples, 0.99):6.1f} ms  next pages p99 "
                f"{percentile(deep, 0.99):6.1f} ms  load {load()}",
                flush=True,
            )


def main() -> None:  # noqa: PLR0915 - one script, read top to bottom
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--soak", type=int, default=60)
    args = parser.parse_args()
    redis_server = shutil.which("redis-server")
    if not Path(WRK).is_absolute() or not redis_server:
        raise SystemExit("bench_production needs wrk and redis-server (Debian packages)")
    workdir = ROOT / "var" / "bench-production"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    body, signature = delivery_body(workdir)
    script = workdir / "deliveries.lua"
    script.write_text(WRK_SCRIPT.format(body=body, signature=signature))
    print(f"uptime load before: {load()}", flush=True)

    with ExitStack() as stack:

        def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

            def stop() -> None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()

            stack.callback(stop)
            return process

        bare_ports = [free_port(), free_port()]
        bare = [
            start([str(UVICORN), "bare_asgi:app", "--port", str(p), "--log-level", "warning",
                   "--no-access-log", "--app-dir", str(ROOT / "bench")])
            for p in bare_ports
        ]  # fmt: skip
        for port in bare_ports:
            wait_ready(port, "/")
        bare_result = wrk_pair(bare_ports, "/", script, args)
        for process in bare:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        line("2 bare ASGI processes (202 only)", bare_result)

        redis_port = free_port()
        start([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)])  # fmt: skip
        sql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE);;CREATE DATABASE {DATABASE}")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DRAGON_")},
            "DRAGON_DATABASE_URL": f"{SERVER}/{DATABASE}",
            "DRAGON_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DRAGON_LOG_LEVEL": "warning",
            "DRAGON_BOOTSTRAP_ADMIN": "false",
            "DRAGON_GITHUB_WEBHOOK_SECRET": SECRET,
            "DRAGON_WORKER_ENABLED": "false",
            "DRAGON_DB_POOL_SIZE": "20",
        }
        subprocess.run([str(DRAGON), "migrate"], env=env, check=True, capture_output=True)
        admin = subprocess.run(
            [str(DRAGON), "keys", "create", "--name", "bench", "--role", "admin"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        ports = [free_port(), free_port()]
        apis = [start([str(DRAGON), "serve", "--port", str(p)], env) for p in ports]
        workers = [start([str(DRAGON), "worker"], env) for _ in range(2)]
        for port in ports:
            wait_ready(port)

        result = wrk_pair(ports, "/webhooks/github", script, args)
        line("dragon: 2 API + 2 workers, PostgreSQL + Redis", result, bare_result)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            (pending,) = query("SELECT count(*) FROM deliveries WHERE status = 'pending'")[0]
            if not pending:
                break
            time.sleep(1)
        rows = query(
            "SELECT extract(epoch FROM processed_at - received_at) * 1000 FROM deliveries "
            "WHERE processed_at IS NOT NULL"
        )
        latencies = [float(r[0]) for r in rows]
        if latencies:
            print(
                f"accepted → processed (incident opened/updated), {len(latencies)} deliveries "
                f"under load: p50 {percentile(latencies, 0.5):.0f} ms  "
                f"p99 {percentile(latencies, 0.99):.0f} ms  load {load()}",
                flush=True,
            )

        if args.incidents:
            seed_incidents(args.incidents)
            listing(ports[0], admin)

        pids = {f"api-{i}": p.pid for i, p in enumerate(apis)} | {
            f"worker-{i}": p.pid for i, p in enumerate(workers)
        }
        before = {name: rss_mib(pid) for name, pid in pids.items()}
        soak = argparse.Namespace(connections=8, seconds=args.soak)
        soaked = wrk_pair(ports, "/webhooks/github", script, soak)
        after = {name: rss_mib(pid) for name, pid in pids.items()}
        line(f"soak {args.soak} s at 8 connections per replica", soaked)
        for name in pids:
            print(f"  RSS {name:<9} {before[name]:6.1f} MiB → {after[name]:6.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
