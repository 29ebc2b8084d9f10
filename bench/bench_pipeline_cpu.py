"""CPU and round trips per delivery of the worker's pipeline, in one process on PostgreSQL:
the passes of a delivery job (delivery → signal → incident, then that incident's triage →
decision → notification queued, as `dragon worker` runs them), or with `--split` processing
and triage each on their own (the triage worker's claim path); then what the same worker
processes do beside that path (the notification outbox, the runs of the decisions). Each
figure is the process's CPU and the CPU of the database's backends serving it, so it does not
depend on what else the machine runs.

    .venv/bin/python bench/bench_pipeline_cpu.py [--deliveries 1000] [--batch 100] [--split]
        [--profile]

Uses a dedicated dragon_bench_pipeline database on the local PostgreSQL, dropped after. Every
delivery is a new failure (its own run, branch and commit), as in the production bench's e2e
phase. `--profile` prints the top functions by CPU time (cProfile on process time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import hmac
import os
import pstats
import time
from collections.abc import Awaitable, Callable

import asyncpg
from paced_sender import BRANCH_MARK, RUN_MARK, SHA_MARK, delivery_template
from sqlalchemy import event

from dragon.domain.clock import system_clock
from dragon.logs import configure_logging
from dragon.services.container import Services
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.store.migrate import upgrade
from dragon.wiring.services import build_services
from dragon.workers.jobs import settle_and_triage
from dragon.workers.runs import run_pass

SERVER_DSN = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "dragon_bench_pipeline"
SECRET = "bench-pipeline-secret-0123456789abcdef"  # noqa: S105 - a throwaway local database's


def body_of(template: bytes, number: int) -> bytes:
    return (
        template.replace(RUN_MARK.encode(), f"1{number:011d}".encode())
        .replace(BRANCH_MARK.encode(), f"bench-e2e-{number:010d}".encode())
        .replace(SHA_MARK.encode(), f"{number:040x}".encode())
    )


async def admin(statement: str) -> None:
    conn = await asyncpg.connect(f"{SERVER_DSN}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def backend_cpu(pids: list[int]) -> float:
    """CPU seconds the database's backends `pids` have used (those still running)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def backends() -> list[int]:
    """The bench database's backends (this host's PostgreSQL; /proc shows their CPU)."""
    conn = await asyncpg.connect(f"{SERVER_DSN}/postgres")
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            DATABASE,
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


class Meter:
    """Process CPU, the database's CPU and statements sent to the database over one phase."""

    def __init__(self, engine_sync: object) -> None:
        self.statements = 0

        @event.listens_for(engine_sync, "before_cursor_execute")
        def _count(*_args: object) -> None:
            self.statements += 1

    async def measure(
        self, label: str, work: Callable[[], Awaitable[int]], *, per: int, profile: bool
    ) -> None:
        profiler = cProfile.Profile(time.process_time) if profile else None
        pids = await backends()
        before_db = backend_cpu(pids)
        before_cpu, before_n, started = time.process_time(), self.statements, time.monotonic()
        if profiler:
            profiler.enable()
        done = await work()
        if profiler:
            profiler.disable()
        cpu = time.process_time() - before_cpu
        wall = time.monotonic() - started
        # Backends opened during the phase count whole (the pool's, opened for it).
        later = [pid for pid in await backends() if pid not in pids]
        database = backend_cpu(pids) - before_db + backend_cpu(later)
        print(
            f"{label}: {done} in {wall:.2f} s wall, CPU {cpu / max(1, per) * 1000:.2f} ms "
            f"(PostgreSQL {database / max(1, per) * 1000:.2f} ms) and "
            f"{(self.statements - before_n) / max(1, per):.2f} statements per delivery",
            flush=True,
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            pstats.Stats(profiler).sort_stats("cumtime").print_stats("dragon/", 30)


async def phases(args: argparse.Namespace, services: Services, meter: Meter) -> None:
    template = delivery_template()
    n = args.deliveries

    async def accept() -> int:
        async def one(i: int) -> None:
            body = body_of(template, i)
            signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {
                "x-github-event": "workflow_run",
                "x-github-delivery": f"cpu-{i}",
                "x-hub-signature-256": f"sha256={signature}",
            }
            await services.ingest.receive("github", headers=headers, body=body)

        await asyncio.gather(*(one(i) for i in range(n)))
        return n

    async def job_passes() -> int:
        # As a delivery job's drain: pass after pass, each triaging what it opened.
        done = 0
        while (settled := await settle_and_triage(services, triage_inline=True)).count:
            done += settled.count
        return done

    async def process() -> int:
        done = 0
        while (settled := await services.processor.run_due(batch=args.batch)) > 0:
            done += settled
        return done

    async def triage() -> int:
        done = 0
        while (settled := await services.triage.run_pending()) > 0:
            done += settled
        return done

    async def notifications() -> int:
        done = 0
        while (passed := await services.notifications.run_due()) > 0:
            done += passed
        return done

    async def runs() -> int:
        # What the run worker does with the decisions (schedule, run, check outcomes).
        return await run_pass(services)

    await meter.measure("accept (reference)", accept, per=n, profile=False)
    if args.split:
        await meter.measure("process", process, per=n, profile=args.profile)
        await meter.measure("triage", triage, per=n, profile=args.profile)
    else:
        label = "job passes (process, triage)"
        await meter.measure(label, job_passes, per=n, profile=args.profile)
    # Beside the end-to-end path, in the same worker processes:
    await meter.measure("notification outbox", notifications, per=n, profile=args.profile)
    await meter.measure("runs of the decisions", runs, per=n, profile=args.profile)


async def run(args: argparse.Namespace) -> None:
    await admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    await admin(f"CREATE DATABASE {DATABASE}")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}"
    try:
        await upgrade(url)
        os.environ.update(DRAGON_DATABASE_URL=url, DRAGON_GITHUB_WEBHOOK_SECRET=SECRET)
        settings = Settings()
        configure_logging(level="warning", fmt=settings.log_format)
        database = connect(url, pool_size=8)
        services = build_services(settings, database, clock=system_clock)
        meter = Meter(database.writer.sync_engine)

        await phases(args, services, meter)
        report = await services.audit.verify()
        print(f"audit chain: {report}")
        await services.ingest.close()
        await database.dispose()
    finally:
        await admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="deliveries per processing pass")
    parser.add_argument(
        "--split", action="store_true", help="process, then triage through the claim path"
    )
    parser.add_argument("--profile", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
