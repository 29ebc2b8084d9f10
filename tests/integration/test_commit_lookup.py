"""A pass's correlation reads the newest incidents of each of its commits by one index probe per
commit: on PostgreSQL never a scan of every incident, even in a young, never-analyzed store
(where `commit_sha IN (...)` with a pass's commits was planned as two seq scans); on every
store the newest 21 of each commit, newest first."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from dragon.domain.entities import Incident
from dragon.store.inbox import _BY_COMMIT_ON_POSTGRES, incidents_by_commit
from dragon.store.tables import incidents
from tests.integration.test_triage_queue import _incident, _migrate, scratch_url  # noqa: F401

COMMITS = 60


async def test_the_newest_incidents_of_each_commit_come_from_the_index(
    scratch_url: str,  # noqa: F811 - the fixture, imported
) -> None:
    rows = [
        {**_incident(f"inc_{n:06d}", "open"), "commit_sha": f"sha{n % COMMITS:03d}"}
        for n in range(3000)
    ]
    engine = create_async_engine(scratch_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, "upgrade", "head")
            await connection.execute(incidents.insert(), rows)
            await connection.commit()
        dialect = engine.dialect.name
        shas = [f"sha{n:03d}" for n in range(0, COMMITS, 2)] + ["unknown"]
        statement = incidents_by_commit(shas, dialect=dialect)
        plan = ""
        if dialect == "postgresql":
            async with engine.connect() as connection:
                explained = await connection.execute(
                    sa.text(f"EXPLAIN {_BY_COMMIT_ON_POSTGRES}"), {"shas": sorted(set(shas))}
                )
                plan = "\n".join(explained.scalars())
        async with AsyncSession(engine) as session:
            found: list[Incident] = list(await session.scalars(statement))
    finally:
        await engine.dispose()

    assert "Seq Scan on incidents" not in plan, plan
    expected = sorted(
        (r["id"] for r in rows if r["commit_sha"] in shas),
        reverse=True,
    )
    by_commit: dict[str, list[str]] = {}
    for incident_id in expected:
        sha = f"sha{int(str(incident_id)[4:]) % COMMITS:03d}"
        by_commit.setdefault(sha, []).append(str(incident_id))
    newest = sorted((i for ids in by_commit.values() for i in ids[:21]), reverse=True)
    assert [i.id for i in found] == newest
    assert all(i.commit_sha in shas for i in found)
