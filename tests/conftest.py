"""Shared fixtures: a real, migrated database per test (SQLite by default, PostgreSQL when
DRAGON_DATABASE_URL names one), a controllable clock, the app, keys for each role, and a fake
GitHub API for the tests that act on GitHub."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.app import create_app
from dragon.domain.enums import Role
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Settings
from dragon.store.migrate import upgrade
from dragon.store.tables import metadata
from tests.fake_github import FakeGitHub
from tests.support.readiness import app_ready

# Which tests the PostgreSQL pass runs, and the guards that keep that honest.
pytest_plugins = ["tests.support.store_selection"]

_URL = os.environ.get("DRAGON_DATABASE_URL", "")
# The suite runs on PostgreSQL when DRAGON_DATABASE_URL names one; otherwise on fresh SQLite files.
GIVEN_POSTGRES_URL = _URL if _URL.startswith("postgresql") else ""
# Under pytest-xdist each worker (gw0, gw1, ...) has a database of its own beside the given one
# (`test` -> `test_gw0`), made from it when the worker starts; without xdist, the given one.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def worker_database_url(url: str, worker: str) -> str:
    if not url or not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


POSTGRES_URL = worker_database_url(GIVEN_POSTGRES_URL, _WORKER)


PROCRASTINATE_TABLES = (
    "procrastinate_jobs",
    "procrastinate_periodic_defers",
    "procrastinate_workers",
)
WEBHOOK_SECRETS = {
    "github": "github-webhook-secret-for-tests-0123456789",
    "gitlab": "gitlab-webhook-token-for-tests-0123456789",
    "jenkins": "jenkins-webhook-secret-for-tests-0123456789",
    "alertmanager": "alertmanager-token-for-tests-0123456789",
}


class FakeClock:
    """The one clock, held still; tests move it with `advance`."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def recreate_worker_database(*, drop_only: bool = False) -> None:
    """DROP + CREATE this worker's PostgreSQL database, through a connection to the given one."""
    name = make_url(POSTGRES_URL).database
    engine = create_async_engine(GIVEN_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if not drop_only:
                await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
                # A commit returns without waiting for its WAL flush: what a client sees is
                # the same; only a crash of the PostgreSQL server itself, which no test makes
                # on this one, could lose the last commits. Spares every test's commits a sync.
                await connection.execute(
                    sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
                )
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Migrate once per session (per xdist worker): a template SQLite file, or the PostgreSQL
    test database (the worker's own, created for the session and dropped after it)."""
    if POSTGRES_URL:
        if POSTGRES_URL != GIVEN_POSTGRES_URL:
            await recreate_worker_database()
        engine = create_async_engine(POSTGRES_URL)
        async with engine.begin() as connection:
            await connection.execute(sa.text("DROP SCHEMA public CASCADE"))
            await connection.execute(sa.text("CREATE SCHEMA public"))
        await engine.dispose()
        await upgrade(POSTGRES_URL)
        yield POSTGRES_URL
        if POSTGRES_URL != GIVEN_POSTGRES_URL:
            await recreate_worker_database(drop_only=True)
        return
    path = tmp_path_factory.mktemp("template") / "dragon.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    yield str(path)


@pytest.fixture
async def database_url(migrated_template: str, tmp_path: Path) -> str:
    """A fresh, migrated, empty database for one test."""
    if POSTGRES_URL:
        engine = create_async_engine(POSTGRES_URL)
        # procrastinate's jobs too (delivery processing runs on them on PostgreSQL).
        tables = ", ".join([*(t.name for t in metadata.sorted_tables), *PROCRASTINATE_TABLES])
        async with engine.begin() as connection:
            await connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()
        return POSTGRES_URL
    path = tmp_path / "dragon.db"
    await asyncio.to_thread(shutil.copyfile, migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        bootstrap_admin=False,
        expiry_sweep_seconds=3600,
        log_format="console",
        github_webhook_secret=WEBHOOK_SECRETS["github"],
        gitlab_webhook_token=WEBHOOK_SECRETS["gitlab"],
        jenkins_webhook_secret=WEBHOOK_SECRETS["jenkins"],
        alertmanager_token=WEBHOOK_SECRETS["alertmanager"],
        # Tests drive processing with services.processor.run_due(), so nothing races them.
        worker_enabled=False,
        # The live feed publishes once at start, then waits: tests step it with
        # workers.live_feed.publish_if_changed.
        live_poll_seconds=60,
    )


@pytest.fixture
async def app(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
        await app_ready(application)
        yield application


@pytest.fixture
def services(app: FastAPI) -> Services:
    found: Services = app.state.services
    return found


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
        yield http


@dataclass(frozen=True)
class Keys:
    """One API key per role, plus a second developer and two more approvers for quorum tests."""

    viewer: str
    developer: str
    developer2: str
    approver: str
    approver2: str
    approver3: str
    admin: str

    def of(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, name)}"}


@pytest.fixture
async def keys(services: Services) -> Keys:
    made: dict[str, str] = {}
    for name, role in (
        ("viewer", Role.VIEWER),
        ("developer", Role.DEVELOPER),
        ("developer2", Role.DEVELOPER),
        ("approver", Role.APPROVER),
        ("approver2", Role.APPROVER),
        ("approver3", Role.APPROVER),
        ("admin", Role.ADMIN),
    ):
        issued = await services.auth.create_key(SYSTEM_CALLER, name=name, role=role)
        made[name] = issued.secret
    return Keys(**made)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """GitHub's REST API, faked on a loopback port for one test (a module that needs another
    GitHub peer, or one per module, defines its own `github`)."""
    with FakeGitHub() as server:
        yield server
