"""A runbook's `notify` step queues one notification through the outbox, in the transaction
that marks the step done, routed by the configured routing file; the notification worker then
delivers it to a webhook peer on 127.0.0.1 that verifies its signature. A retry of the run
never queues it twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook

from dragon.domain.execution import ActionRequest
from dragon.domain.ports import Page, RunQuery
from dragon.services.container import Services
from dragon.services.runbook_notify import NotifyStep
from dragon.services.runs import RunStepLog
from dragon.settings import Settings
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from dragon.workers.runs import run_pass
from tests.conftest import FakeClock, Keys
from tests.fake_github import FakeGitHub, Scripted
from tests.integration.test_runs import COMMENTS, REPO, audit_actions, changed, run_of
from tests.notify_setup import WEBHOOK_SECRET, notify_settings
from tests.peers import HttpPeer, running_peer
from tests.slack_peer import FakeSlack

MANIFEST: dict[str, Any] = {
    "name": "tell-and-comment",
    "version": "1.0.0",
    "description": "Tell the on-call route, then comment on the pull request",
    "parameters": [{"name": "service", "type": "string"}],
    "steps": [
        {"id": "tell", "action": "notify", "with": {"message": "Restarting {{ params.service }}"}},
        {"id": "note", "action": "comment", "with": {"body": "restarted", "pull_number": 7}},
    ],
}


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    yield from running_peer()


@pytest.fixture
def slack_api() -> Iterator[HttpPeer]:
    yield from running_peer(FakeSlack())


@pytest.fixture
def settings(
    settings: Settings, github: FakeGitHub, tmp_path: Path, peer: HttpPeer, slack_api: HttpPeer
) -> Settings:
    base = changed(
        settings,
        github_token=github.state.token,
        github_api_url=github.url,
        http_timeout_seconds=5.0,
    )
    return notify_settings(base, tmp_path=tmp_path, peer_url=peer.url, slack_url=slack_api.url)


async def outbox_rows(database_url: str) -> list[tuple[str, str | None]]:
    engine = create_async_engine(database_url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT event, decision_id FROM notification_events "
                "WHERE event = 'runbook.notify' ORDER BY id"
            )
        )
        found = [(str(r[0]), r[1]) for r in rows]
    await engine.dispose()
    return found


async def start_runbook(client: httpx.AsyncClient, keys: Keys) -> dict[str, Any]:
    registered = await client.post("/api/v1/runbooks", json=MANIFEST, headers=keys.of("admin"))
    assert registered.status_code == 201, registered.text
    incident = await client.post(
        "/api/v1/incidents",
        json={"title": "checkout is down", "severity": "SEV3", "repo": REPO},
        headers=keys.of("developer"),
    )
    made = await client.post(
        "/api/v1/runbooks/tell-and-comment/runs",
        json={
            "parameters": {"service": "checkout"},
            "repo": REPO,
            "incident_id": incident.json()["id"],
        },
        headers=keys.of("developer"),
    )
    assert made.status_code == 201, made.text
    decision: dict[str, Any] = made.json()
    approved = await client.post(
        f"/api/v1/decisions/{decision['id']}/approve",
        json={"justification": "tell them"},
        headers=keys.of("approver"),
    )
    assert approved.json()["status"] == "approved", approved.text
    return decision


async def test_a_notify_step_queues_one_notification_the_worker_delivers(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    peer: HttpPeer,
    database_url: str,
    clock: FakeClock,
) -> None:
    decision = await start_runbook(client, keys)
    # The comment after the notify step fails once: the retry must not notify again.
    github.state.script[f"POST {COMMENTS}"] = [Scripted(502, {"message": "Bad Gateway"})]
    await run_pass(services)
    assert (await run_of(client, keys, decision["id"]))["status"] == "queued"
    clock.advance(seconds=30)
    await run_pass(services)

    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    steps = [(s["step"], s["status"]) for s in run["log"]]
    assert ("tell.notify", "ok") in steps
    assert ("tell", "reused") in steps  # the second attempt skipped the finished step
    (told_step,) = [s for s in run["log"] if s["step"] == "tell.notify"]
    assert told_step["event_id"].startswith("nev")
    # The result lists the step the first attempt finished, too.
    assert run["result"]["steps"]["tell"]["event_id"] == told_step["event_id"]
    assert await outbox_rows(database_url) == [("runbook.notify", decision["id"])]
    assert "run.notified" in await audit_actions(services, run["id"])

    await services.notifications.run_due()
    delivered = [
        Webhook(WEBHOOK_SECRET).verify(got.body, got.headers)
        for got in peer.received
        if got.path == "/hook"
    ]
    (told,) = [d for d in delivered if d["type"] == "runbook.notify"]
    assert told["data"]["details"]["message"] == "Restarting checkout"
    assert told["data"]["headline"] == "[SEV3] Runbook: Restarting checkout (checkout is down)"
    assert told["data"]["decision"]["id"] == decision["id"]
    listed = await client.get(
        "/api/v1/notifications", params={"decision_id": decision["id"]}, headers=keys.of("admin")
    )
    sent = [n for n in listed.json()["items"] if n["event"] == "runbook.notify"]
    assert [(n["status"], n["channel"], n["route"]) for n in sent] == [("sent", "hook", "default")]


async def test_a_notify_step_without_a_message_is_refused_at_registration(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    bad = {
        **MANIFEST,
        "steps": [{"id": "tell", "action": "notify", "with": {"text": "hi", "escalate": "yes"}}],
    }
    response = await client.post("/api/v1/runbooks", json=bad, headers=keys.of("admin"))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"steps[0].with.text", "steps[0].with.message", "steps[0].with.escalate"}


async def test_a_notify_step_called_again_after_a_crash_queues_nothing_new(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    app: FastAPI,
    database_url: str,
    clock: FakeClock,
) -> None:
    decision = await start_runbook(client, keys)
    await services.runs.schedule()
    (run,) = (await services.runs.find(RunQuery(page=Page(limit=5))))[0]
    step = NotifyStep(SqlUnitOfWorkFactory(app.state.database), clock=clock)
    request = ActionRequest(
        run_id=run.id,
        idempotency_key=f"{run.idempotency_key}-tell",
        action="notify",
        params={"message": "Restarting checkout"},
        decision_id=decision["id"],
        incident_id=decision["incident_id"],
        repo=REPO,
        branch=None,
        source=None,
        policy_version=None,
        policy_rule=None,
    )
    first = await step(request, RunStepLog(clock=clock, save=None, fence=None))
    # The worker died before it recorded the step as done: the next attempt calls it again.
    again = await step(request, RunStepLog(clock=clock, save=None, fence=None))
    assert again == {"event_id": first["event_id"], "reused": True}
    assert await outbox_rows(database_url) == [("runbook.notify", decision["id"])]
