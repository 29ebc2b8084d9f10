"""The triage queue: an incident is stored with its pending triage row, so the worker finds its
work in an index range instead of scanning every incident; migrations 0008 (incident search
indexes) and 0009 (pending rows for incidents stored before) go up and down cleanly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.engine import make_url as parse_url
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.domain.enums import TriageStatus
from dragon.services.container import Services
from dragon.store.migrate import alembic_config
from tests.conftest import POSTGRES_URL, Keys

BEFORE = "0003_ingest_jobs"
INDEXES = "0008_bench_incident_indexes"


async def triage_rows(database_url: str) -> dict[str, str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT incident_id, status FROM triage_runs"))
            return {r.incident_id: r.status for r in rows}
    finally:
        await engine.dispose()


async def test_a_stored_incident_waits_pending_and_leaves_triaged(
    client: httpx.AsyncClient, services: Services, keys: Keys, database_url: str
) -> None:
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "deploy token rejected: 401 Unauthorized", "severity": "SEV3"},
        headers=keys.of("developer"),
    )
    incident_id = response.json()["id"]

    waiting = await triage_rows(database_url)
    settled = await services.triage.run_pending()
    after = await triage_rows(database_url)

    assert waiting == {incident_id: TriageStatus.PENDING.value}
    assert settled == 1
    assert after == {incident_id: TriageStatus.DONE.value}
    assert await services.triage.run_pending() == 0


async def test_a_pending_incident_resolved_before_triage_is_not_triaged(
    client: httpx.AsyncClient, services: Services, keys: Keys, database_url: str
) -> None:
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "flaky alert", "severity": "SEV4"},
        headers=keys.of("developer"),
    )
    incident_id = response.json()["id"]
    resolved = await client.post(
        f"/api/v1/incidents/{incident_id}/resolve", json={}, headers=keys.of("developer")
    )
    assert resolved.status_code == 200, resolved.text

    assert await services.triage.run_pending() == 0
    assert await triage_rows(database_url) == {incident_id: TriageStatus.PENDING.value}


@pytest.fixture
async def scratch_url(tmp_path: object) -> AsyncIterator[str]:
    """An empty database of its own: migrating down must not touch the suite's."""
    if not POSTGRES_URL:
        yield f"sqlite+aiosqlite:///{tmp_path}/migrations.db"
        return
    name = f"{parse_url(POSTGRES_URL).database}_migr_{uuid.uuid4().hex[:8]}"
    server = create_async_engine(
        parse_url(POSTGRES_URL).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with server.connect() as connection:
        await connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield parse_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with server.connect() as connection:
            await connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        await server.dispose()


def _migrate(connection: Connection, direction: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, direction)(config, revision)


def _incident(incident_id: str, status: str) -> dict[str, object]:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return {
        "id": incident_id,
        "title": f"{status} incident",
        "description": "",
        "severity": "SEV3",
        "status": status,
        "source": "api",
        "labels": "{}",
        "signal_count": 1,
        "created_by": "prn_test",
        "created_at": now,
        "updated_at": now,
        "first_seen_at": now,
        "last_seen_at": now,
    }


async def test_migrations_give_older_incidents_their_pending_triage_and_go_down_cleanly(
    scratch_url: str,
) -> None:
    engine = create_async_engine(scratch_url)
    insert = sa.text(
        "INSERT INTO incidents (id, title, description, severity, status, source, labels, "
        "signal_count, created_by, created_at, updated_at, first_seen_at, last_seen_at) VALUES "
        "(:id, :title, :description, :severity, :status, :source, :labels, :signal_count, "
        ":created_by, :created_at, :updated_at, :first_seen_at, :last_seen_at)"
    )
    rows = sa.text("SELECT incident_id, status FROM triage_runs ORDER BY incident_id")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, "upgrade", INDEXES)
            for incident_id, status in (("inc_a", "open"), ("inc_b", "resolved")):
                await connection.execute(insert, _incident(incident_id, status))
            await connection.run_sync(_migrate, "upgrade", "head")
            upgraded = (await connection.execute(rows)).all()
            await connection.run_sync(_migrate, "downgrade", BEFORE)
            downgraded = (await connection.execute(rows)).all()
            indexes = await connection.run_sync(
                lambda c: {i["name"] for i in sa.inspect(c).get_indexes("incidents")}
            )
            await connection.run_sync(_migrate, "upgrade", "head")
            again = (await connection.execute(rows)).all()
            await connection.commit()
    finally:
        await engine.dispose()

    assert [tuple(r) for r in upgraded] == [("inc_a", "pending")]
    assert downgraded == []
    assert not {"ix_incidents_title_trgm", "ix_incidents_description_trgm"} & indexes
    assert [tuple(r) for r in again] == [("inc_a", "pending")]
