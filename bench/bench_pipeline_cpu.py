"""CPU and round trips per delivery of the worker's pipeline, in one process on PostgreSQL:
processing (delivery → signal → incident) and triage (incident → decision → notification
queued), each measured on its own, so the figures do not depend on what else the machine runs;
then what the same worker processes do beside that path (the notification outbox, the runs of
the decisions).

    .venv/bin/python bench/bench_pipeline_cpu.py [--deliveries 1000] [--batch 100] [--profile]

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
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.store.migrate import upgrade
from dragon.wiring.services import build_services
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


class Meter:
    """Process CPU and statements sent to the database over one phase."""

    def __init__(self, engine_sync: object) -> None:
        self.statements = 0

        @event.listens_for(engine_sync, "before_cursor_execute")
        def _count(*_args: object) -> None:
            self.statements += 1

    async def measure(
        self, label: str, work: Callable[[], Awaitable[int]], *, per: int, profile: bool
    ) -> None:
        profiler = cProfile.Profile(time.process_time) if profile else None
        before_cpu, before_n, started = time.process_time(), self.statements, time.monotonic()
        if profiler:
            profiler.enable()
        done = await work()
        if profiler:
            profiler.disable()
        cpu = time.process_time() - before_cpu
        wall = time.monotonic() - started
        print(
            f"{label}: {done} in {wall:.2f} s wall, CPU {cpu / max(1, per) * 1000:.2f} ms and "
            f"{(self.statements - before_n) / max(1, per):.1f} statements per delivery",
            flush=True,
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            pstats.Stats(profiler).sort_stats("cumtime").print_stats("dragon/", 30)


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
        await meter.measure("process", process, per=n, profile=args.profile)
        await meter.measure("triage", triage, per=n, profile=args.profile)
        # Beside the end-to-end path, in the same worker processes:
        await meter.measure("notification outbox", notifications, per=n, profile=args.profile)
        await meter.measure("runs of the decisions", runs, per=n, profile=args.profile)
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
    parser.add_argument("--profile", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
