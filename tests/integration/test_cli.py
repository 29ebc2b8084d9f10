"""Specification of the `dragon` command on the real database.

The commands run their own event loop (asyncio.run), so these tests are plain functions, and any
setup or check they need on the store runs through `on_store` in a loop of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import orjson
import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner, Result

from dragon.app import build_services
from dragon.cli import CLI_CALLER, cli
from dragon.domain.audit import GENESIS_HASH, rehash
from dragon.domain.clock import system_clock
from dragon.domain.entities import AuditEvent
from dragon.domain.enums import Role, Severity
from dragon.domain.errors import Unauthenticated
from dragon.domain.policy import default_policy
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.incidents import NewIncident
from dragon.settings import Settings
from dragon.store.database import connect
from dragon.store.migrate import current_revision, head_revision
from dragon.store.tables import audit_events

T = TypeVar("T")
SECRET = re.compile(r"^drg_[A-Za-z0-9_-]{43}$", re.MULTILINE)
BAD_POLICY = """\
version: 2
name: broken
rules:
  - id: Not An Id
    effect: maybe
    match:
      action: rerun_job
default:
  effect: require_approval
"""


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI's environment: the test database, no other DRAGON_ settings, no .env file."""
    for name in list(os.environ):
        if name.startswith("DRAGON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRAGON_DATABASE_URL", database_url)
    monkeypatch.setenv("DRAGON_LOG_FORMAT", "console")
    monkeypatch.chdir(tmp_path)
    loggers = [
        logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    ]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield database_url
    # The commands configure logging onto the runner's streams, which close after each run.
    structlog.reset_defaults()
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:], lg.propagate = handlers, propagate
        lg.setLevel(level)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def said(result: Result) -> str:
    return result.stdout + result.stderr


def on_store(database_url: str, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run `work` against the database in an event loop of its own, as the CLI itself does."""

    async def go() -> T:
        database = connect(database_url, pool_size=2)
        settings = Settings(_env_file=None, database_url=database_url)
        try:
            return await work(build_services(settings, database, clock=system_clock))
        finally:
            await database.dispose()

    return asyncio.run(go())


def create_key(name: str, role: str) -> tuple[str, str]:
    """`dragon keys create`; returns the key id and the secret it printed."""
    result = run("keys", "create", "--name", name, "--role", role)
    assert result.exit_code == 0, said(result)
    match = re.search(
        rf"created key (key_\w+) for {re.escape(name)} \({role}\); store it now:", result.stdout
    )
    assert match, result.stdout
    (secret,) = SECRET.findall(result.stdout)
    return match.group(1), secret


# migrate


def test_migrate_brings_a_fresh_sqlite_file_to_the_latest_schema(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "fresh" / "dragon.db"
    monkeypatch.setenv("DRAGON_DATABASE_URL", f"sqlite+aiosqlite:///{path}")

    first = run("migrate")
    again = run("migrate")

    assert first.exit_code == 0, said(first)
    assert first.stdout == "database is at the latest schema\n"
    assert again.exit_code == 0, said(again)
    with sqlite3.connect(path) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert revision == head_revision()
    assert {"incidents", "decisions", "approvals", "audit_events", "audit_head"} <= tables


def test_migrate_on_an_already_migrated_database_changes_nothing(cli_env: str) -> None:
    result = run("migrate")

    assert result.exit_code == 0, said(result)

    async def revision() -> str | None:
        engine = create_async_engine(cli_env)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(revision()) == head_revision()


# keys


def test_keys_create_prints_the_secret_exactly_once(cli_env: str) -> None:
    result = run("keys", "create", "--name", "alice", "--role", "approver")

    assert result.exit_code == 0, said(result)
    secrets = SECRET.findall(result.stdout)
    assert len(secrets) == 1
    assert result.stdout.count(secrets[0]) == 1
    assert secrets[0] not in result.stderr
    principal = on_store(cli_env, lambda s: s.auth.authenticate(secrets[0]))
    assert (principal.name, principal.role) == ("alice", Role.APPROVER)


def test_keys_list_shows_the_key_but_never_its_secret(cli_env: str) -> None:
    _, secret = create_key("alice", "approver")

    result = run("keys", "list")

    assert result.exit_code == 0, said(result)
    assert "alice" in result.stdout
    assert "approver" in result.stdout
    assert secret[:10] in result.stdout  # the prefix identifies the key
    assert secret not in result.stdout
    assert secret[10:] not in result.stdout


def test_revoked_key_no_longer_authenticates(cli_env: str) -> None:
    key_id, secret = create_key("alice", "approver")
    assert on_store(cli_env, lambda s: s.auth.authenticate(secret)).name == "alice"

    revoked = run("keys", "revoke", key_id)

    assert revoked.exit_code == 0, said(revoked)
    assert revoked.stdout == f"revoked {key_id}\n"
    with pytest.raises(Unauthenticated) as refused:
        on_store(cli_env, lambda s: s.auth.authenticate(secret))
    assert refused.value.code == "credentials_invalid"
    listed = on_store(cli_env, lambda s: s.auth.list_keys())
    assert [(k.id, k.revoked_at is not None) for k, _ in listed] == [(key_id, True)]


def test_revoking_twice_or_an_unknown_key_exits_1_with_the_error_code(cli_env: str) -> None:
    key_id, _ = create_key("alice", "approver")
    run("keys", "revoke", key_id)

    twice = run("keys", "revoke", key_id)
    unknown = run("keys", "revoke", "key_[/nope]")

    assert twice.exit_code == 1
    assert f"error (api_key_revoked): API key {key_id} is already revoked" in twice.stderr
    assert unknown.exit_code == 1
    assert "error (api_key_not_found): no API key key_[/nope]" in unknown.stderr


def test_key_for_an_existing_principal_with_another_role_is_refused(cli_env: str) -> None:
    create_key("alice", "approver")

    result = run("keys", "create", "--name", "alice", "--role", "admin")

    assert result.exit_code == 1
    assert "error (principal_role_mismatch)" in result.stderr
    assert SECRET.findall(result.stdout) == []


def test_names_that_look_like_markup_print_as_themselves(cli_env: str) -> None:
    key_id, secret = create_key("[/bold]", "viewer")

    listed = run("keys", "list")

    assert listed.exit_code == 0, said(listed)
    assert "[/bold]" in listed.stdout
    assert on_store(cli_env, lambda s: s.auth.authenticate(secret)).name == "[/bold]"
    assert key_id.startswith("key_")


def test_invalid_role_is_refused_by_the_command_line(cli_env: str) -> None:
    result = run("keys", "create", "--name", "alice", "--role", "superuser")

    assert result.exit_code == 2
    assert "superuser" in result.stderr


# policy check


def test_policy_check_accepts_a_valid_policy(cli_env: str, tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(default_policy().source, encoding="utf-8")

    result = run("policy", "check", "policy.yaml")

    assert result.exit_code == 0, said(result)
    assert result.stdout == (
        f"policy.yaml: ok — policy 'default', {len(default_policy().rules)} rules, "
        f"{default_policy().version}\n"
    )


def test_policy_check_reports_every_problem_as_file_line(cli_env: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_POLICY, encoding="utf-8")

    result = run("policy", "check", "bad.yaml")

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == [
        "bad.yaml:1:",
        "bad.yaml:4:",
        "bad.yaml:5:",
        "3",
    ]
    assert lines[0] == "bad.yaml:1: version: format version must be 1, got an integer (2)"
    assert lines[1].startswith("bad.yaml:4: rules[0].id: rule id 'Not An Id' must be")
    assert lines[2].startswith("bad.yaml:5: rules[0].effect: unknown effect 'maybe'")
    assert lines[3] == "3 problem(s)"
    assert result.stdout == ""


def test_policy_problems_stay_on_one_line_however_long_the_path(
    cli_env: str, tmp_path: Path
) -> None:
    deep = tmp_path / ("a-directory-with-a-rather-long-name-" * 3) / "policies"
    deep.mkdir(parents=True)
    (deep / "bad.yaml").write_text(BAD_POLICY, encoding="utf-8")

    result = run("policy", "check", str(deep / "bad.yaml"))

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{deep / 'bad.yaml'}:1: version: format version must be 1, got an integer (2)"
    )


def test_policy_text_that_looks_like_markup_is_reported_not_interpreted(
    cli_env: str, tmp_path: Path
) -> None:
    (tmp_path / "bad.yaml").write_text(
        BAD_POLICY.replace("Not An Id", '"[/red]"'), encoding="utf-8"
    )

    result = run("policy", "check", "bad.yaml")

    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "bad.yaml:4: rules[0].id: rule id '[/red]' must be" in result.stderr


def test_policy_check_of_a_missing_file_exits_2(cli_env: str) -> None:
    result = run("policy", "check", "nowhere.yaml")

    assert result.exit_code == 2
    assert "nowhere.yaml" in result.stderr


# audit verify and export


def open_incidents(database_url: str, count: int) -> None:
    async def work(services: Services) -> None:
        for n in range(count):
            await services.incidents.open(
                SYSTEM_CALLER, NewIncident(title=f"job {n} failed", severity=Severity.SEV3)
            )

    on_store(database_url, work)


def tamper_details(database_url: str, seq: int) -> None:
    """Edit one event's details by SQL, behind Dragon's back."""

    async def work() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    sa.update(audit_events)
                    .where(audit_events.c.seq == seq)
                    .values(details={"title": "nothing to see"})
                )
        finally:
            await engine.dispose()

    asyncio.run(work())


def test_audit_verify_exits_0_on_an_intact_chain_and_1_once_tampered(cli_env: str) -> None:
    create_key("alice", "approver")  # events 1 and 2
    open_incidents(cli_env, 3)  # events 3, 4 and 5

    intact = run("audit", "verify")
    tamper_details(cli_env, 4)
    broken = run("audit", "verify")

    assert intact.exit_code == 0, said(intact)
    assert intact.stdout == "ok: 5 events, chain intact\n"
    assert broken.exit_code == 1
    assert broken.stderr == (
        "broken at seq 4: content does not match its hash (3 events verified before it)\n"
    )


def test_audit_verify_on_an_empty_store_is_ok(cli_env: str) -> None:
    result = run("audit", "verify")

    assert result.exit_code == 0, said(result)
    assert result.stdout == "ok: 0 events, chain intact\n"


def test_audit_export_writes_every_event_as_a_json_line_that_chains(
    cli_env: str, tmp_path: Path
) -> None:
    _, secret = create_key("alice", "approver")
    open_incidents(cli_env, 4)

    result = run("audit", "export", "-o", "audit.jsonl")

    assert result.exit_code == 0, said(result)
    assert result.stderr == "exported 6 events\n"
    raw = (tmp_path / "audit.jsonl").read_bytes()
    assert secret.encode() not in raw
    rows = [orjson.loads(line) for line in raw.splitlines()]
    assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row["action"] for row in rows] == ["principal.created", "api_key.created"] + [
        "incident.created"
    ] * 4
    previous = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == previous
        event = AuditEvent(**{**row, "occurred_at": datetime.fromisoformat(row["occurred_at"])})
        assert rehash(event) == row["hash"]  # the export alone is enough to re-verify
        previous = row["hash"]


def test_audit_export_to_stdout(cli_env: str) -> None:
    open_incidents(cli_env, 2)

    result = run("audit", "export")

    assert result.exit_code == 0, said(result)
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(row["seq"], row["action"]) for row in rows] == [
        (1, "incident.created"),
        (2, "incident.created"),
    ]


# deliveries


def test_deliveries_list_shows_dead_ones_and_retry_sends_one_back(cli_env: str) -> None:
    async def dead_delivery(services: Services) -> str:
        receipt = await services.ingest.submit(
            CLI_CALLER,
            event={"kind": "ci_failure", "title": "build broke", "repo": "acme/shop"},
            key="cli-dead-1",
        )
        await services.ingest.close()
        return receipt.delivery_id

    delivery_id = on_store(cli_env, dead_delivery)

    async def make_dead(services: Services) -> None:
        engine = create_async_engine(cli_env)
        async with engine.begin() as connection:
            await connection.execute(
                sa.text("UPDATE deliveries SET status = 'dead', attempts = 5 WHERE id = :id"),
                {"id": delivery_id},
            )
        await engine.dispose()

    on_store(cli_env, make_dead)
    listed = run("deliveries", "list", "--status", "dead")
    assert listed.exit_code == 0, said(listed)
    assert delivery_id in listed.stdout

    retried = run("deliveries", "retry", delivery_id)
    assert retried.exit_code == 0, said(retried)
    assert f"{delivery_id} is pending again" in retried.stdout
    assert delivery_id not in run("deliveries", "list", "--status", "dead").stdout

    again = run("deliveries", "retry", delivery_id)
    assert again.exit_code == 1
    assert "delivery_not_dead" in said(again)
