"""The production bench's measurements, each against a running Cluster: the end-to-end
pipeline from the store's own timestamps, incident listing over a bulk-loaded million rows,
and resident memory across a soak."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
from paced_sender import PacedSender, SendResult, percentile
from processes import load_average, rss_mib
from production_cluster import Cluster

# Every figure is one row of the final table.
Row = tuple[str, str, str]  # figure, value, floor verdict ("" when the issue sets none)


@dataclass
class Figures:
    rows: list[Row] = field(default_factory=list)

    def add(self, figure: str, value: str, verdict: str = "") -> None:
        self.rows.append((figure, value, verdict))
        print(f"  {figure}: {value} {verdict}  (load {load_average()})", flush=True)

    def table(self) -> str:
        width = max(len(r[0]) for r in self.rows) if self.rows else 10
        value_width = max(len(r[1]) for r in self.rows) if self.rows else 10
        lines = [f"{'figure':<{width}}  {'value':<{value_width}}  floor"]
        lines.append("-" * (width + value_width + 20))
        lines += [f"{f:<{width}}  {v:<{value_width}}  {m}" for f, v, m in self.rows]
        return "\n".join(lines)


def verdict(ok: bool, floor: str) -> str:
    return f"{'met' if ok else 'MISSED'} ({floor})"


def pending(cluster: Cluster) -> int:
    rows = cluster.sql("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'")
    return int(rows[0]["n"])


def drain(cluster: Cluster, *, seconds: float) -> tuple[int, float, int]:
    """Wait for the inbox backlog to be worked off: (backlog, per second, left)."""
    backlog = left = pending(cluster)
    started = time.monotonic()
    while left and time.monotonic() - started < seconds:
        time.sleep(1)
        left = pending(cluster)
    spent = time.monotonic() - started
    return backlog, (backlog - left) / spent if spent > 0 else 0.0, left


E2E_QUERY = """
SELECT extract(epoch FROM d.processed_at - d.received_at) * 1000 AS processed,
       extract(epoch FROM i.created_at - d.received_at) * 1000 AS opened,
       extract(epoch FROM ne.created_at - d.received_at) * 1000 AS queued
FROM deliveries d
LEFT JOIN signals s ON s.delivery_id = d.id
LEFT JOIN incidents i ON i.id = s.incident_id
LEFT JOIN decisions dec ON dec.incident_id = i.id
LEFT JOIN notification_events ne ON ne.decision_id = dec.id AND ne.event LIKE 'decision.%'
WHERE d.delivery_key LIKE '{prefix}-%'
"""

# What the wait below polls every second: the decisions' notifications queued since the run
# began. Cheap (one table, no join), so the poll does not load the database whose work it
# waits for (the exact join over every delivery of the run cost 70-85 ms of the database's CPU
# per poll at 10,000 deliveries); the figures themselves come from E2E_QUERY, exactly.
QUEUED_SINCE = """
SELECT count(*) AS n FROM notification_events
WHERE event LIKE 'decision.%' AND created_at >= '{since}'
"""


def database_now(cluster: Cluster) -> str:
    return str(cluster.sql("SELECT now()::text AS now")[0]["now"])


def wait_queued(cluster: Cluster, *, since: str, expected: int, seconds: float) -> int:
    """Until `expected` decisions have had their notification queued since `since` (the
    database's clock), or nothing moved for 15 s, or `seconds` passed."""
    deadline = time.monotonic() + seconds
    done, last_change, last = 0, time.monotonic(), -1
    while time.monotonic() < deadline:
        done = int(cluster.sql(QUEUED_SINCE.format(since=since))[0]["n"])
        if done >= expected:
            break
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > 15:
            break
        time.sleep(1)
    return done


@dataclass(frozen=True)
class Pipeline:
    processed: list[float]
    opened: list[float]
    queued: list[float]


def pipeline_latencies(cluster: Cluster, *, prefix: str) -> Pipeline:
    rows = cluster.sql(E2E_QUERY.format(prefix=prefix))

    def column(name: str) -> list[float]:
        return [float(r[name]) for r in rows if r[name] is not None]

    return Pipeline(column("processed"), column("opened"), column("queued"))


def send(cluster: Cluster, *, secret: str, prefix: str, rate: float, seconds: float) -> SendResult:
    async def run() -> SendResult:
        sender = PacedSender(port=cluster.port, secret=secret, prefix=prefix)
        try:
            return await sender.run(rate=rate, seconds=seconds)
        finally:
            await sender.close()

    return asyncio.run(run())


def seed_incidents(cluster: Cluster, *, count: int) -> float:
    """Bulk-load `count` older incidents in one INSERT ... SELECT generate_series, then vacuum
    them; seconds."""
    started = time.monotonic()
    cluster.sql(f"""
        INSERT INTO incidents (id, title, description, severity, status, source, repo, branch,
            fingerprint, labels, signal_count, created_by, created_at, updated_at,
            first_seen_at, last_seen_at)
        SELECT 'inc_' || lpad(to_hex(1600000000000 + i), 12, '0') || lpad(to_hex(i), 16, '0'),
            (ARRAY['build','test','deploy','lint','release'])[1 + i % 5] || ' failed on org/repo-'
                || (i % 100) || ' branch feature-' || i,
            'workflow run ' || i || ' failed', (ARRAY['SEV1','SEV2','SEV3','SEV4'])[1 + i % 4],
            (ARRAY['open','acknowledged','resolved'])[1 + i % 3],
            (ARRAY['github','gitlab','jenkins','alertmanager','api'])[1 + i % 5],
            'org/repo-' || (i % 100), 'feature-' || i, md5(i::text), '{{}}', 1, 'prn_bench',
            t, t, t, t
        FROM generate_series(1, {count}) AS i,
             LATERAL (SELECT now() - make_interval(secs => {count} - i)) AS at(t)
    """)  # noqa: S608 - the bench's own integer, no input
    # Triaged long ago, as every stored incident is: the triage queue has nothing for them.
    cluster.sql(
        "INSERT INTO triage_runs (incident_id, status, token, attempts, lease_until, created_at,"
        " updated_at) SELECT id, 'done', 'seed', 1, created_at, created_at, created_at"
        " FROM incidents WHERE created_by = 'prn_bench' ON CONFLICT DO NOTHING"
    )
    # As autovacuum keeps a live store: the rows all-visible (index-only scans read no heap
    # page) and the trigram indexes' pending lists merged (a GIN search reads its whole pending
    # list, up to 4 MB after a bulk load). Without it the listing was measured against
    # autovacuum working through the million rows, with every page's visibility unknown.
    cluster.sql("VACUUM ANALYZE incidents")
    cluster.sql("VACUUM ANALYZE triage_runs")
    return time.monotonic() - started


LISTING_CASES: dict[str, dict[str, str]] = {
    "newest 50": {},
    "status=open": {"status": "open"},
    "status=acknowledged&severity=SEV1": {"status": "acknowledged", "severity": "SEV1"},
    "severity=SEV2": {"severity": "SEV2"},
    "source=jenkins": {"source": "jenkins"},
    "repo=org/repo-7": {"repo": "org/repo-7"},
    "status=open&repo=org/repo-7": {"status": "open", "repo": "org/repo-7"},
    "q=repo-42 (1% match)": {"q": "repo-42 "},
    "q=feature-424242 (one match)": {"q": "feature-424242"},
}


def listing(cluster: Cluster, figures: Figures, *, admin: str, samples: int) -> None:
    headers = {"Authorization": f"Bearer {admin}"}
    worst = 0.0
    with httpx.Client(base_url=f"http://127.0.0.1:{cluster.port}", timeout=30) as http:

        def timed(params: dict[str, str]) -> tuple[float, dict[str, object]]:
            started = time.perf_counter()
            answer = http.get("/api/v1/incidents", params=params, headers=headers)
            spent = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise SystemExit(f"listing {params} answered {answer.status_code}: {answer.text}")
            return spent, answer.json()

        for label, filters in LISTING_CASES.items():
            params = {**filters, "limit": "50"}
            first = [timed(params)[0] for _ in range(samples)]
            # Keyset pagination: follow next_cursor 50 pages down.
            _, page = timed(params)
            deep = []
            for _ in range(50):
                if not page.get("next_cursor"):
                    break
                spent, page = timed({**params, "cursor": str(page["next_cursor"])})
                deep.append(spent)
            p99 = max(percentile(first, 0.99), percentile(deep, 0.99) if deep else 0.0)
            worst = max(worst, p99)
            figures.add(
                f"list {label}",
                f"p50 {percentile(first, 0.5):.1f} ms  p99 {percentile(first, 0.99):.1f} ms"
                f"  pages 2-51 p99 {percentile(deep, 0.99):.1f} ms",
                verdict(p99 < 50, "p99 < 50 ms"),
            )
        # A cursor in the middle of the million: page 10,000 of 50.
        middle = cluster.sql("SELECT id FROM incidents ORDER BY id LIMIT 1 OFFSET 500000")
        cursor = str(middle[0]["id"]) if middle else None
        if cursor:
            times = [timed({"limit": "50", "cursor": cursor})[0] for _ in range(samples)]
            p99 = percentile(times, 0.99)
            worst = max(worst, p99)
            figures.add(
                "list page 10,000 (keyset cursor)",
                f"p50 {percentile(times, 0.5):.1f} ms  p99 {p99:.1f} ms",
                verdict(p99 < 50, "p99 < 50 ms"),
            )


@dataclass
class MemoryTrace:
    """RSS samples per process over a soak: (seconds since start, MiB)."""

    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def take(self, cluster: Cluster, elapsed: float) -> None:
        for name, pid in cluster.processes().items():
            self.samples.setdefault(name, []).append((elapsed, rss_mib(pid)))


def slope_mib_per_min(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in points)
    return cov / var * 60 if var else 0.0


def soak(
    cluster: Cluster,
    *,
    secret: str,
    rate: float,
    seconds: float,
    every: float,
    warmup: float,
) -> tuple[MemoryTrace, SendResult]:
    trace = MemoryTrace()

    async def run() -> SendResult:
        sender = PacedSender(port=cluster.port, secret=secret, prefix="soak")
        started = time.monotonic()

        async def sample() -> None:
            while True:
                trace.take(cluster, time.monotonic() - started)
                await asyncio.sleep(every)

        sampler = asyncio.create_task(sample())
        try:
            return await sender.run(rate=rate, seconds=seconds, first=10**9)
        finally:
            trace.take(cluster, time.monotonic() - started)
            sampler.cancel()
            await sender.close()

    result = asyncio.run(run())
    return trace, result
