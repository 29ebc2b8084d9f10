"""Incident listing reads a page's ids from an index: the filters of the listing are answered
by an index-only scan (migration 0010_pipeline_listing_indexes), so a page below thousands of
newer incidents that do not match costs index entries, not rows. The plan is PostgreSQL's
own (EXPLAIN); the pages themselves are checked on every store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

from dragon.domain.enums import IncidentStatus, Severity
from dragon.domain.ports import IncidentQuery, Page
from dragon.services.container import Services
from dragon.store.incident_search import IncidentTextSamples
from dragon.store.repositories import incident_page_ids
from dragon.store.tables import incidents
from tests.conftest import POSTGRES_URL
from tests.integration.test_triage_queue import _incident, _migrate, scratch_url  # noqa: F401

OLDER = 600  # spread over every severity, status and source
TEMPLATED = 2000  # titles that share every word but their numbers
NEWER = 400  # on top of them: all open SEV3 github incidents


def _row(n: int, *, severity: str, status: str, source: str) -> dict[str, object]:
    return {
        **_incident(f"inc_{n:08d}", status),
        "severity": severity,
        "source": source,
        "repo": f"org/repo-{n % 7}",
        "fingerprint": f"fp-{n}",
        "labels": {},
    }


async def _seed(database_url: str) -> None:
    rows = [
        _row(
            n,
            severity=f"SEV{1 + n % 4}",
            status=("open", "acknowledged", "resolved")[n % 3],
            source=("github", "gitlab", "jenkins")[n % 3],
        )
        for n in range(OLDER)
    ] + [
        _row(n, severity="SEV3", status="open", source="github")
        for n in range(OLDER, OLDER + NEWER)
    ]
    await _insert_flushed(database_url, rows)


async def _insert_flushed(database_url: str, rows: list[dict[str, Any]]) -> None:
    """Insert the incidents in one transaction whose commit waits for the WAL flush: the test
    databases commit without waiting for it, and until it comes VACUUM cannot mark the rows
    all-visible (their commit hint bits wait for it), so the planner would cost an index-only
    scan as reading every row."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(sa.text("SET LOCAL synchronous_commit = on"))
            await connection.execute(sa.insert(incidents), rows)
    finally:
        await engine.dispose()


async def _vacuum_until_all_visible(connection: AsyncConnection) -> None:
    """VACUUM ANALYZE until every page of the table is marked all-visible, as autovacuum keeps
    a live store. A snapshot another session holds open (a test beside this one on a busy
    server) can keep one VACUUM from marking the new rows; the planner would then cost an
    index-only scan as reading every row."""
    visible = "SELECT relallvisible >= relpages FROM pg_class WHERE relname = 'incidents'"
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        await connection.execute(sa.text("VACUUM ANALYZE incidents"))
        if (await connection.execute(sa.text(visible))).scalar():
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("VACUUM did not mark the incidents all-visible within 60 s")
        await asyncio.sleep(0.2)


async def test_each_filter_reads_its_page_ids_from_an_index_alone(database_url: str) -> None:
    if not POSTGRES_URL:
        return  # the plan is PostgreSQL's; SQLite's pages are checked below
    await _seed(database_url)
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    plans: dict[str, str] = {}
    try:
        async with engine.connect() as connection:
            await _vacuum_until_all_visible(connection)
            # A table this small would be read whole; the question is which index serves.
            await connection.execute(sa.text("SET enable_seqscan = off"))
            await connection.execute(sa.text("SET enable_bitmapscan = off"))
            for label, query in {
                "severity": IncidentQuery(severity=Severity.SEV2),
                "source": IncidentQuery(source="jenkins"),
                "status and severity": IncidentQuery(
                    status=IncidentStatus.ACKNOWLEDGED, severity=Severity.SEV1
                ),
                "status, severity and source": IncidentQuery(
                    status=IncidentStatus.OPEN, severity=Severity.SEV1, source="gitlab"
                ),
                "a later page": IncidentQuery(
                    source="gitlab", page=Page(after=f"inc_{OLDER - 50:08d}")
                ),
            }.items():
                sql = incident_page_ids(query).compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
                found = await connection.exec_driver_sql(f"EXPLAIN {sql}")
                plans[label] = "\n".join(row[0] for row in found)
    finally:
        await engine.dispose()

    for label, plan in plans.items():
        assert "Index Only Scan Backward" in plan, f"{label}:\n{plan}"
        assert "pk_incidents" not in plan, f"{label}:\n{plan}"


async def test_filtered_pages_below_newer_non_matching_incidents_are_complete_and_in_order(
    services: Services, database_url: str
) -> None:
    await _seed(database_url)
    expected = [f"inc_{n:08d}" for n in reversed(range(OLDER)) if n % 3 == 2]  # jenkins

    pages, cursor = [], None
    while True:
        found, cursor = await services.incidents.find(
            IncidentQuery(source="jenkins", page=Page(limit=50, after=cursor))
        )
        pages.append([incident.id for incident in found])
        if cursor is None:
            break

    assert [i for page in pages for i in page] == expected
    assert [len(page) for page in pages] == [50, 50, 50, 50]


async def _seed_templated(database_url: str) -> None:
    """Titles as CI failures write them: every word common but the numbers."""
    rows = [
        {
            **_row(n, severity="SEV3", status="open", source="github"),
            "title": _title(n),
            "description": f"workflow run {n} failed",
        }
        for n in range(TEMPLATED)
    ]
    await _insert_flushed(database_url, rows)


async def _unsampled(connection: AsyncConnection) -> int:
    """A templated incident whose title ANALYZE left out of the title index's sample: its
    number is a text the statistics call rare, so a search for it is narrowed."""
    sampled = sa.text(
        "SELECT histogram_bounds::text::text[] FROM pg_stats"
        " WHERE tablename = 'ix_incidents_title_trgm'"
    )
    values = set((await connection.execute(sampled)).scalar() or ())
    return next(n for n in range(1, TEMPLATED) if _title(n) not in values)


def _title(n: int) -> str:
    return f"build failed on org/repo-{n % 7} branch feature-{n * 7919}"


async def test_a_rare_text_of_common_words_asks_the_trigram_index_for_its_rare_part_only(
    database_url: str,
) -> None:
    if not POSTGRES_URL:
        return  # the trigram indexes are PostgreSQL's
    await _seed_templated(database_url)
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await _vacuum_until_all_visible(connection)  # and ANALYZE: the statistics sample
            # A table this small would be walked by id; the question is what the index is
            # asked for.
            await connection.execute(sa.text("SET enable_seqscan = off"))
            await connection.execute(sa.text("SET enable_indexscan = off"))
            plans = {}
            rare_text = f"feature-{await _unsampled(connection) * 7919}"
            for text in (rare_text, "repo-3 branch feature-"):
                async with AsyncSession(bind=connection) as session:
                    samples = await IncidentTextSamples().read(session)
                sql = incident_page_ids(IncidentQuery(text=text), samples=samples).compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
                found = await connection.exec_driver_sql(f"EXPLAIN {sql}")
                plans[text] = "\n".join(row[0] for row in found)
    finally:
        await engine.dispose()

    rare = plans[rare_text]
    assert "Bitmap Index Scan on ix_incidents_title_trgm" in rare, rare
    title_condition = next(
        line for line in rare.splitlines() if "Index Cond: (lower((title)" in line
    )
    assert f"%-{rare_text.removeprefix('feature-')}%" in title_condition, rare
    assert "feature" not in title_condition, rare
    # A text in many titles keeps its whole pattern (and the planner walks the ids).
    common = plans["repo-3 branch feature-"]
    assert "strpos" not in common, common


async def test_text_search_finds_exactly_the_incidents_containing_the_text(
    services: Services, database_url: str
) -> None:
    await _seed_templated(database_url)
    rare = 1234
    if POSTGRES_URL:  # with statistics, and a number they leave out: the narrowed search
        engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await _vacuum_until_all_visible(connection)
                rare = await _unsampled(connection)
        finally:
            await engine.dispose()
    titles = {f"inc_{n:08d}": _title(n) for n in range(TEMPLATED)}

    for text in (f"feature-{rare * 7919}", f"FEATURE-{rare * 7919}", "-79190", "repo-3 branch"):
        expected = sorted((i for i, t in titles.items() if text.lower() in t), reverse=True)
        found, cursor = [], None
        while True:
            page, cursor = await services.incidents.find(
                IncidentQuery(text=text, page=Page(limit=200, after=cursor))
            )
            found += [incident.id for incident in page]
            if cursor is None:
                break
        assert found == expected, text
        assert found, text


async def test_the_text_indexes_keep_a_sample_of_a_thousand_values_until_migrated_down(
    scratch_url: str,  # noqa: F811 - the fixture, imported
) -> None:
    """Migration 0011: ANALYZE samples 1,000 values of each text index's expression, so a text
    in 1% of the incidents is in the sample the planner and the narrowing read."""
    if not POSTGRES_URL:
        return  # SQLite keeps no such statistics
    targets = sa.text(
        "SELECT c.relname, a.attstattarget FROM pg_attribute a JOIN pg_class c"
        " ON c.oid = a.attrelid WHERE c.relname IN"
        " ('ix_incidents_title_trgm', 'ix_incidents_description_trgm') AND a.attnum = 1"
    )
    engine = create_async_engine(scratch_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, "upgrade", "head")
            upgraded = {r[0]: r[1] for r in await connection.execute(targets)}
            await connection.run_sync(_migrate, "downgrade", "0010_pipeline_listing_indexes")
            downgraded = {r[0]: r[1] for r in await connection.execute(targets)}
            await connection.commit()
    finally:
        await engine.dispose()

    assert upgraded == {"ix_incidents_title_trgm": 1000, "ix_incidents_description_trgm": 1000}
    assert set(downgraded.values()) <= {-1, None}, downgraded  # the default again


async def test_the_statistics_sample_is_read_again_only_after_its_period(
    database_url: str,
) -> None:
    if not POSTGRES_URL:
        return  # the sample is PostgreSQL's
    await _seed_templated(database_url)
    now = [0.0]
    samples = IncidentTextSamples(seconds=60, clock=lambda: now[0])
    engine = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await _vacuum_until_all_visible(connection)
            async with AsyncSession(bind=connection) as session:
                first = await samples.read(session)
                now[0] = 59.0
                cached = await samples.read(session)
                now[0] = 60.0
                again = await samples.read(session)
    finally:
        await engine.dispose()

    assert first["title"].share("build failed on") == 1.0
    assert cached is first
    assert again is not first
    assert again == first
