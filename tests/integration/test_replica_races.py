"""Periodic work that every replica and worker runs at once, done once: several passes racing
over the same due rows (each pass its own transaction, as on separate processes) queue each
reminder, escalation and expiry once. On PostgreSQL the passes really overlap; the claims skip
rows another pass holds (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.services.container import Services
from dragon.settings import Settings
from tests.conftest import FakeClock, Keys
from tests.integration.test_notifications import open_incident
from tests.notify_setup import notify_settings
from tests.peers import HttpPeer, running_peer

RACERS = 6


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    yield from running_peer()


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, peer: HttpPeer) -> Settings:
    return notify_settings(settings, tmp_path=tmp_path, peer_url=peer.url, slack_url=peer.url)


async def count(database_url: str, sql: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(sa.text(sql))).scalar_one())
    finally:
        await engine.dispose()


async def pending_decision(client: httpx.AsyncClient, keys: Keys) -> str:
    incident = await open_incident(client, keys, severity="SEV3", environment="production")
    proposed = await client.post(
        "/api/v1/decisions",
        json={"incident_id": incident["id"], "action": "rollback_deployment", "title": "roll back"},
        headers=keys.of("developer"),
    )
    assert proposed.json()["status"] == "pending_approval", proposed.text
    decision_id: str = proposed.json()["id"]
    return decision_id


async def test_reminders_from_racing_workers_are_queued_once_per_decision(
    client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock, database_url: str
) -> None:
    for _ in range(3):
        await pending_decision(client, keys)
    clock.advance(hours=23, minutes=46)  # 14 minutes left of 24 h: reminder time

    sent = await asyncio.gather(*(services.notifications.remind_due() for _ in range(RACERS)))
    clock.advance(minutes=10)  # 4 minutes left: escalation time
    escalated = await asyncio.gather(*(services.notifications.remind_due() for _ in range(RACERS)))

    reminders = "SELECT count(*) FROM notification_events WHERE event = 'decision.reminder'"
    escalations = "SELECT count(*) FROM notification_events WHERE event = 'decision.escalated'"
    assert await count(database_url, reminders) == 3
    assert await count(database_url, escalations) == 3
    assert sum(sent) == 3
    assert sum(escalated) == 3


async def test_expiry_sweeps_from_racing_workers_expire_each_decision_once(
    client: httpx.AsyncClient, services: Services, keys: Keys, clock: FakeClock, database_url: str
) -> None:
    for _ in range(3):
        await pending_decision(client, keys)
    clock.advance(hours=25)

    expired = await asyncio.gather(*(services.decisions.expire_overdue() for _ in range(RACERS)))

    audited = "SELECT count(*) FROM audit_events WHERE action = 'decision.expired'"
    assert sum(expired) == 3
    assert await count(database_url, audited) == 3


async def test_notifications_from_racing_workers_reach_each_channel_once(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer, database_url: str
) -> None:
    for _ in range(4):
        await open_incident(client, keys, severity="SEV3", environment="production")

    await asyncio.gather(*(services.notifications.run_due() for _ in range(RACERS)))
    await services.notifications.run_due()  # anything a racer left due

    queued = await count(database_url, "SELECT count(*) FROM notifications")
    per_channel = await count(
        database_url,
        "SELECT count(*) FROM (SELECT DISTINCT event_id, channel FROM notifications) AS d",
    )
    posted = [r for r in peer.received if r.path == "/hook"]
    assert queued >= 4
    assert per_channel == queued  # routed once: one notification per event and channel
    sent = "SELECT count(*) FROM notifications WHERE status = 'sent' AND channel = 'hook'"
    assert len(posted) == await count(database_url, sent) >= 4  # and each sent once
