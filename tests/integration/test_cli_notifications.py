"""`dragon notifications list` and `retry`: a failed notification is found from the terminal
and sent again (audited)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner, Result

from dragon.app import build_services
from dragon.cli import cli
from dragon.domain.clock import system_clock
from dragon.domain.enums import NotificationStatus, Severity
from dragon.domain.ports import AuditQuery, NotificationQuery
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.incidents import NewIncident
from dragon.settings import Settings
from dragon.store.database import connect
from tests.notify_setup import notify_settings
from tests.peers import Answer, HttpPeer, running_peer


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    yield from running_peer(lambda _: Answer(404, {"error": "no such hook"}))


@pytest.fixture
def cli_settings(
    database_url: str, tmp_path: Path, peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    base = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    settings = notify_settings(base, tmp_path=tmp_path, peer_url=peer.url, slack_url=peer.url)
    for name in list(os.environ):
        if name.startswith("DRAGON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRAGON_DATABASE_URL", database_url)
    monkeypatch.setenv("DRAGON_LOG_FORMAT", "console")
    monkeypatch.setenv("DRAGON_NOTIFICATIONS_FILE", str(settings.notifications_file))
    monkeypatch.setenv("DRAGON_SLACK_BOT_TOKEN", "xoxb-cli-test")
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield settings
    structlog.reset_defaults()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def on_store(settings: Settings, work: object) -> object:
    async def go() -> object:
        database = connect(settings.database_url, pool_size=2)
        services = build_services(settings, database, clock=system_clock)
        try:
            return await work(services)  # type: ignore[operator]
        finally:
            await services.notifications.close()
            await database.dispose()

    return asyncio.run(go())


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_a_failed_notification_is_listed_and_retried_from_the_cli(
    cli_settings: Settings, peer: HttpPeer
) -> None:
    async def fail_one(services: Services) -> str:
        await services.incidents.open(
            SYSTEM_CALLER, NewIncident(title="nightly build broke", severity=Severity.SEV3)
        )
        await services.notifications.run_due()
        [failed], _ = await services.notifications.find(
            NotificationQuery(status=NotificationStatus.FAILED)
        )
        return failed.id

    failed_id = on_store(cli_settings, fail_one)
    assert len(peer.received) == 1
    listed = run("notifications", "list", "--status", "failed")
    assert listed.exit_code == 0, listed.stdout + listed.stderr
    assert failed_id in listed.stdout
    assert "404" in listed.stdout

    retried = run("notifications", "retry", str(failed_id))
    assert retried.exit_code == 0, retried.stdout + retried.stderr
    assert f"{failed_id} is pending again" in retried.stdout
    assert str(failed_id) not in run("notifications", "list", "--status", "failed").stdout
    again = run("notifications", "retry", str(failed_id))
    assert again.exit_code == 1
    assert "notification_not_failed" in again.stdout + again.stderr

    async def audited(services: Services) -> list[str]:
        events = await services.audit.find(AuditQuery(target_id=str(failed_id)))
        return [e.action for e in events]

    actions = on_store(cli_settings, audited)
    assert "notification.retried" in actions  # type: ignore[operator]
