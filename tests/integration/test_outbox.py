"""The outbox is written in the caller's transaction: it commits with the change and vanishes
with a rollback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from dragon.app import build_services
from dragon.domain.enums import Severity
from dragon.domain.ports import NotificationQuery
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.incidents import NewIncident
from dragon.services.outbox import notify
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from tests.conftest import FakeClock

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class Boom(Exception):
    pass


@pytest.fixture
async def store(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[Services, SqlUnitOfWorkFactory]]:
    database = connect(settings.database_url, pool_size=2)
    try:
        yield build_services(settings, database, clock=clock), SqlUnitOfWorkFactory(database)
    finally:
        await database.dispose()


async def unrouted(uow_factory: SqlUnitOfWorkFactory) -> list[str]:
    async with uow_factory() as uow:
        events = await uow.notifications.claim_unrouted(limit=100)
        return [e.event for e in events]


async def test_a_notification_commits_with_its_change(
    store: tuple[Services, SqlUnitOfWorkFactory],
) -> None:
    services, uow_factory = store
    incident = await services.incidents.open(
        SYSTEM_CALLER, NewIncident(title="disk full", severity=Severity.SEV2)
    )
    assert await unrouted(uow_factory) == ["incident.opened"]
    async with uow_factory() as uow:
        [event] = await uow.notifications.claim_unrouted(limit=10)
    assert event.incident_id == incident.id
    assert event.subject["incident"]["severity"] == "SEV2"


async def test_a_rolled_back_change_leaves_no_notification(
    store: tuple[Services, SqlUnitOfWorkFactory],
) -> None:
    services, uow_factory = store
    incident = await services.incidents.open(
        SYSTEM_CALLER, NewIncident(title="disk full", severity=Severity.SEV2)
    )

    async def change_that_fails() -> None:
        async with uow_factory() as uow:
            found = await uow.incidents.get(incident.id)
            await notify(uow, event="incident.updated", now=NOW, incident=found)
            raise Boom

    with pytest.raises(Boom):
        await change_that_fails()
    assert await unrouted(uow_factory) == ["incident.opened"]
    routed = await services.notifications.route_pending()
    assert routed == 1
    listed, _ = await services.notifications.find(NotificationQuery())
    assert listed == []  # no channels configured: routed to nobody, nothing to send
    assert await unrouted(uow_factory) == []


async def test_a_routing_pass_marks_each_of_its_events_routed_at_its_time(
    store: tuple[Services, SqlUnitOfWorkFactory],
) -> None:
    services, uow_factory = store
    for n in range(3):
        await services.incidents.open(
            SYSTEM_CALLER, NewIncident(title=f"disk full {n}", severity=Severity.SEV2)
        )
    async with uow_factory() as uow:
        ids = [e.id for e in await uow.notifications.claim_unrouted(limit=10)]

    assert await services.notifications.route_pending() == 3

    assert await unrouted(uow_factory) == []
    async with uow_factory() as uow:
        events = [await uow.notifications.event_of(event_id) for event_id in ids]
    assert [e.routed_at is not None for e in events if e] == [True, True, True]
