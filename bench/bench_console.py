"""Measures the console's two hot paths in-process, on a store filled with many rows:
the dashboard figures (what GET /api/v1/dashboard and every live update compute), and the live
feed's fan-out to many open dashboards.

    .venv/bin/python bench/bench_console.py [--database-url URL] [--incidents 20000]
                                             [--decisions 5000] [--subscribers 1000]

Defaults to a fresh SQLite file under var/bench/. Prints one line per measure, with `uptime`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.domain.enums import DecisionStatus, IncidentStatus, PrincipalKind, RiskLevel, Severity
from dragon.domain.ports import LiveEvent
from dragon.services.dashboard import DashboardService
from dragon.services.live_updates import InProcessBroadcaster
from dragon.store.database import connect
from dragon.store.migrate import upgrade
from dragon.store.tables import decisions, incidents, metadata
from dragon.store.unit_of_work import SqlUnitOfWorkFactory

ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False)  # noqa: S607
    return out.stdout.strip().split("load average:")[-1].strip()


def incident_rows(count: int, now: datetime) -> list[dict[str, object]]:
    rows = []
    for n in range(count):
        created = now - timedelta(minutes=random.randint(0, 60 * 24 * 45))
        status = random.choice(list(IncidentStatus))
        acked = created + timedelta(minutes=random.randint(1, 90)) if status != "open" else None
        resolved = (
            created + timedelta(minutes=random.randint(90, 900)) if status == "resolved" else None
        )
        rows.append(
            {
                "id": f"inc_{n:028d}",
                "title": f"incident {n}",
                "description": "",
                "severity": random.choice(list(Severity)),
                "status": status,
                "source": random.choice(["github", "gitlab", "jenkins", "alertmanager"]),
                "labels": {},
                "signal_count": 1,
                "created_by": "bench",
                "created_at": created,
                "updated_at": created,
                "first_seen_at": created,
                "last_seen_at": created,
                "acknowledged_at": acked,
                "resolved_at": resolved,
            }
        )
    return rows


def decision_rows(count: int, now: datetime) -> list[dict[str, object]]:
    rows = []
    for n in range(count):
        created = now - timedelta(minutes=random.randint(0, 60 * 24 * 45))
        gated = random.random() < 0.4
        status = DecisionStatus.APPROVED if gated else DecisionStatus.AUTO_APPROVED
        rows.append(
            {
                "id": f"dec_{n:028d}",
                "title": f"decision {n}",
                "action": "rerun_job",
                "params": {},
                "rationale": "",
                "impact": "",
                "risk_score": 10,
                "risk_level": RiskLevel.LOW,
                "risk_factors": [],
                "proposer_id": "bench",
                "proposer_name": "bench",
                "proposer_kind": PrincipalKind.USER,
                "provenance": {},
                "status": status,
                "policy_reason": "",
                "approvals_required": 1 if gated else 0,
                "approver_roles": [],
                "created_at": created,
                "updated_at": created,
                "decided_at": created + timedelta(minutes=random.randint(0, 120)),
            }
        )
    return rows


async def fill(url: str, *, incident_count: int, decision_count: int, now: datetime) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        for table in (decisions, incidents):
            await connection.execute(sa.delete(table))
        for start in range(0, incident_count, 2000):
            batch = incident_rows(min(2000, incident_count - start), now)
            for n, row in enumerate(batch):
                row["id"] = f"inc_{start + n:028d}"
            await connection.execute(sa.insert(incidents), batch)
        await connection.execute(sa.insert(decisions), decision_rows(decision_count, now))
    await engine.dispose()


async def bench_figures(url: str, now: datetime, runs: int) -> None:
    database = connect(url, pool_size=2, echo=False)
    service = DashboardService(SqlUnitOfWorkFactory(database), clock=lambda: now)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        figures = await service.figures()
        samples.append((time.perf_counter() - started) * 1000)
    await database.dispose()
    print(
        f"dashboard figures        p50 {statistics.median(samples):7.1f} ms   "
        f"max {max(samples):7.1f} ms   ({figures.open_total} open, "
        f"{figures.decisions_in_window} decisions in window)   load {load_average()}"
    )


async def bench_fan_out(subscribers: int, events: int) -> None:
    broadcaster = InProcessBroadcaster()
    received = 0

    async def watch(ready: asyncio.Event) -> None:
        nonlocal received
        async with broadcaster.subscribe() as queue:
            ready.set()
            for _ in range(events):
                await queue.get()
                received += 1

    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = [asyncio.create_task(watch(r)) for r in readies]
    await asyncio.gather(*(r.wait() for r in readies))
    payload = LiveEvent("dashboard", {"open_incidents": {"total": 1}})
    started = time.perf_counter()
    for _ in range(events):
        await broadcaster.publish(payload)
        await asyncio.sleep(0)  # let subscribers drain, as the feed's period would
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    print(
        f"live fan-out             {received / elapsed:9.0f} deliveries/s   "
        f"({subscribers} subscribers x {events} events in {elapsed * 1000:.1f} ms)   "
        f"load {load_average()}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--decisions", type=int, default=5_000)
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    url = args.database_url
    if not url:
        path = ROOT / "var" / "bench" / "console.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    elif url.startswith("postgresql"):
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
            await connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        await engine.dispose()
    await upgrade(url)
    now = datetime.now(UTC)
    random.seed(7)
    await fill(url, incident_count=args.incidents, decision_count=args.decisions, now=now)
    print(f"store: {url.split('://')[0]}, {args.incidents} incidents, {args.decisions} decisions")
    await bench_figures(url, now, args.runs)
    await bench_fan_out(args.subscribers, 50)


if __name__ == "__main__":
    asyncio.run(main())
