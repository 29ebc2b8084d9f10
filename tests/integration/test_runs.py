"""Approved decisions become runs that act once: against a GitHub stand-in on 127.0.0.1, on the
real store (SQLite, or PostgreSQL when DRAGON_DATABASE_URL names one)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.app import create_app
from dragon.domain.enums import Role
from dragon.domain.ports import AuditQuery
from dragon.integrations.github_api import GitHubClient
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Settings
from dragon.workers.runs import run_pass
from tests.conftest import FakeClock, Keys
from tests.fake_github import FakeGitHub, Scripted
from tests.support.readiness import app_ready

REPO = "acme/api"
COMMENTS = rf"/repos/{REPO}/issues/7/comments"


def changed(settings: Settings, **update: Any) -> Settings:
    """`settings` with `update` applied, validated like settings read from the environment."""
    return Settings(_env_file=None, **{**settings.model_dump(), **update})  # type: ignore[call-arg]


@pytest.fixture
def settings(settings: Settings, github: FakeGitHub) -> Settings:
    return changed(
        settings,
        github_token=github.state.token,
        github_api_url=github.url,
        http_timeout_seconds=5.0,
    )


async def propose(
    client: httpx.AsyncClient,
    keys: Keys,
    *,
    action: str = "comment",
    params: dict[str, Any] | None = None,
    environment: str | None = None,
    branch: str | None = None,
    repo: str = REPO,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": action,
        "title": f"{action} on {repo}",
        "repo": repo,
        "params": params if params is not None else {"body": "CI failed", "pull_number": 7},
    }
    if environment:
        body["environment"] = environment
    if branch:
        body["branch"] = branch
    response = await client.post("/api/v1/decisions", json=body, headers=keys.of("developer"))
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    return decision


async def decision_status(client: httpx.AsyncClient, keys: Keys, decision_id: str) -> str:
    response = await client.get(f"/api/v1/decisions/{decision_id}", headers=keys.of("viewer"))
    status: str = response.json()["status"]
    return status


async def run_of(client: httpx.AsyncClient, keys: Keys, decision_id: str) -> dict[str, Any]:
    listing = await client.get(
        "/api/v1/runs", params={"decision_id": decision_id}, headers=keys.of("viewer")
    )
    (summary,) = listing.json()["items"]
    response = await client.get(f"/api/v1/runs/{summary['id']}", headers=keys.of("viewer"))
    assert response.status_code == 200
    run: dict[str, Any] = response.json()
    return run


async def outbox_events(database_url: str) -> list[str]:
    """The notification events queued for the notification worker, oldest first."""
    engine = create_async_engine(database_url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT event FROM notification_events ORDER BY id")
        )
        events = [str(row[0]) for row in rows]
    await engine.dispose()
    return events


async def audit_actions(services: Services, target_id: str) -> list[str]:
    events = await services.audit.find(AuditQuery(target_id=target_id, limit=100))
    return [e.action for e in reversed(events)]


async def test_an_auto_approved_comment_is_posted_once_and_the_run_records_it(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    decision = await propose(client, keys)
    assert decision["status"] == "auto_approved"

    assert await run_pass(services) == 1
    assert await run_pass(services) == 0  # nothing left to do: no second comment

    assert github.state.count("POST", COMMENTS) == 1
    (comment,) = github.state.comments[f"{REPO}#issues/7"]
    assert comment["body"].startswith("CI failed")
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded"
    assert run["attempts"] == 1
    assert run["result"]["comment_url"].startswith("https://github.com/acme/api/issues/7")
    assert [s["step"] for s in run["log"]] == ["queued", "attempt", "comment", "finished"]
    assert run["idempotency_key"] in comment["body"]
    assert await decision_status(client, keys, decision["id"]) == "succeeded"
    assert await audit_actions(services, decision["id"]) == [
        "decision.proposed",
        "decision.auto_approved",
        "decision.executing",
        "decision.succeeded",
    ]
    assert await audit_actions(services, run["id"]) == [
        "run.queued",
        "run.started",
        "run.succeeded",
    ]
    assert (await services.audit.verify()).ok


async def test_a_pending_decision_runs_only_once_approved(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    decision = await propose(client, keys, environment="production")
    assert decision["status"] == "pending_approval"
    assert await run_pass(services) == 0
    for approver in ("approver", "approver2"):
        response = await client.post(
            f"/api/v1/decisions/{decision['id']}/approve",
            json={"justification": "safe to comment"},
            headers=keys.of(approver),
        )
        assert response.status_code == 200
    assert await run_pass(services) == 1
    assert github.state.count("POST", COMMENTS) == 1
    assert await decision_status(client, keys, decision["id"]) == "succeeded"


async def test_denied_rejected_and_expired_decisions_never_run(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, clock: FakeClock
) -> None:
    rejected = await propose(client, keys, environment="production")
    await client.post(
        f"/api/v1/decisions/{rejected['id']}/reject",
        json={"justification": "not now"},
        headers=keys.of("approver"),
    )
    expiring = await propose(client, keys, environment="production")
    denied = await propose(
        client, keys, action="revert_commit", params={"commit_sha": "abc1234"}, branch="main"
    )
    assert denied["status"] == "denied"
    clock.advance(days=2)
    await services.decisions.expire_overdue()
    assert await decision_status(client, keys, expiring["id"]) == "expired"
    assert await run_pass(services) == 0
    assert sum(github.state.calls.values()) == 0
    runs = await client.get("/api/v1/runs", headers=keys.of("viewer"))
    assert runs.json()["items"] == []


async def test_a_5xx_is_retried_with_backoff_and_the_comment_is_still_posted_once(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, clock: FakeClock
) -> None:
    github.state.script[f"POST {COMMENTS}"] = [
        Scripted(503, {"message": "Service Unavailable"}),
        Scripted(502, {"message": "Bad Gateway"}),
    ]
    decision = await propose(client, keys)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "queued"
    assert run["error_code"] == "vendor_unavailable"
    assert "Service Unavailable" in run["error"]
    assert await run_pass(services) == 0  # not due yet: backoff
    clock.advance(seconds=11)
    await run_pass(services)
    assert (await run_of(client, keys, decision["id"]))["status"] == "queued"
    clock.advance(seconds=21)  # the second delay doubles
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded"
    assert run["attempts"] == 3
    assert len(github.state.comments[f"{REPO}#issues/7"]) == 1
    assert "run.retry_scheduled" in await audit_actions(services, run["id"])


async def test_a_4xx_fails_the_run_at_once_with_the_vendors_message(
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    database_url: str,
) -> None:
    github.state.script[f"POST {COMMENTS}"] = [
        Scripted(403, {"message": "Resource not accessible by integration"})
    ]
    decision = await propose(client, keys)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "failed"
    assert run["attempts"] == 1
    assert run["error_code"] == "vendor_rejected"
    assert "Resource not accessible by integration" in run["error"]
    assert await decision_status(client, keys, decision["id"]) == "failed"
    assert github.state.count("POST", COMMENTS) == 1
    assert "run.failed" in await outbox_events(database_url)


async def test_the_admin_kill_switch_holds_runs_queued_until_turned_back_on(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    off = await client.put(
        "/api/v1/actions/switch",
        json={"enabled": False, "reason": "change freeze"},
        headers=keys.of("admin"),
    )
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    refused = await client.put(
        "/api/v1/actions/switch",
        json={"enabled": True, "reason": "mine"},
        headers=keys.of("approver"),
    )
    assert refused.status_code == 403
    decision = await propose(client, keys)
    await run_pass(services)
    assert github.state.count("POST", COMMENTS) == 0
    assert (await run_of(client, keys, decision["id"]))["status"] == "queued"
    await client.put(
        "/api/v1/actions/switch",
        json={"enabled": True, "reason": "freeze over"},
        headers=keys.of("admin"),
    )
    await run_pass(services)
    assert github.state.count("POST", COMMENTS) == 1
    assert await audit_actions(services, "actions") == ["actions.disabled", "actions.enabled"]


async def test_the_setting_kill_switch_is_audited_at_start_and_stops_every_action(
    settings: Settings, clock: FakeClock, github: FakeGitHub
) -> None:
    app = create_app(changed(settings, actions_enabled=False), clock=clock)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await app_ready(app)
        services: Services = app.state.services
        assert await services.runs.run_due() == 0
        state = await services.actions.state()
        assert state.enabled is False
        assert "DRAGON_ACTIONS_ENABLED" in state.reason
        events = await services.audit.find(AuditQuery(action="actions.disabled"))
        assert [e.details["via"] for e in events] == ["setting"]


async def test_dry_run_records_what_would_have_been_done_and_calls_nothing(
    settings: Settings, clock: FakeClock, github: FakeGitHub
) -> None:
    app = create_app(changed(settings, actions_dry_run=True), clock=clock)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await app_ready(app)
        services: Services = app.state.services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            dev = await services.auth.create_key(SYSTEM_CALLER, name="dev", role=Role.DEVELOPER)
            headers = {"Authorization": f"Bearer {dev.secret}"}
            made = await http.post(
                "/api/v1/decisions",
                json={
                    "action": "comment",
                    "title": "comment",
                    "repo": REPO,
                    "params": {"body": "hello", "pull_number": 7},
                },
                headers=headers,
            )
            await run_pass(services)
            listing = await http.get("/api/v1/runs", headers=headers)
            (summary,) = listing.json()["items"]
            run = (await http.get(f"/api/v1/runs/{summary['id']}", headers=headers)).json()
    assert sum(github.state.calls.values()) == 0
    assert run["status"] == "succeeded"
    assert run["dry_run"] is True
    assert run["result"]["would"]["params"] == {"body": "hello", "pull_number": 7}
    assert run["result"]["would"]["repo"] == REPO
    assert made.json()["id"] == run["decision_id"]


async def test_the_blast_radius_limit_stops_actions_beyond_n_per_repository_per_hour(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, clock: FakeClock
) -> None:
    policy = (await client.get("/api/v1/policy", headers=keys.of("viewer"))).json()["source"]
    limited = policy.replace("actions_per_repo_per_hour: 10", "actions_per_repo_per_hour: 2")
    assert limited != policy
    put = await client.put(
        "/api/v1/policy",
        content=limited,
        headers={**keys.of("admin"), "content-type": "application/yaml"},
    )
    assert put.status_code == 200, put.text
    decisions = [await propose(client, keys) for _ in range(3)]
    other_repo = await propose(client, keys, repo="acme/web")
    await run_pass(services)
    statuses = [(await run_of(client, keys, d["id"]))["status"] for d in decisions]
    assert statuses == ["succeeded", "succeeded", "failed"]
    third = await run_of(client, keys, decisions[2]["id"])
    assert third["error_code"] == "blast_radius_exceeded"
    assert (await run_of(client, keys, other_repo["id"]))["status"] == "succeeded"
    assert github.state.count("POST", COMMENTS) == 2
    # An hour later the window has room again.
    clock.advance(minutes=61)
    later = await propose(client, keys)
    await run_pass(services)
    assert (await run_of(client, keys, later["id"]))["status"] == "succeeded"


async def test_two_workers_racing_for_the_same_decisions_act_once_each(  # noqa: PLR0917 - fixtures
    settings: Settings,
    clock: FakeClock,
    github: FakeGitHub,
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
) -> None:
    decisions = [
        await propose(client, keys, params={"body": f"note {i}", "pull_number": 7})
        for i in range(4)
    ]
    second = create_app(settings, clock=clock)
    async with LifespanManager(second, startup_timeout=60, shutdown_timeout=60):
        await app_ready(second)
        await asyncio.gather(
            run_pass(services), run_pass(second.state.services), run_pass(services)
        )
    assert github.state.count("POST", COMMENTS) == 4
    bodies = sorted(c["body"].split("\n")[0] for c in github.state.comments[f"{REPO}#issues/7"])
    assert bodies == ["note 0", "note 1", "note 2", "note 3"]
    for decision in decisions:
        assert (await run_of(client, keys, decision["id"]))["attempts"] == 1


async def test_a_github_app_signs_an_rs256_jwt_and_caches_the_installation_token_until_expiry(
    settings: Settings, clock: FakeClock, github: FakeGitHub
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    github.state.clock = clock
    github.state.app_public_key = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    app_settings = changed(
        settings,
        github_token=None,
        github_app_id=github.state.app_id,
        github_app_private_key=pem,
        github_app_installation_id="67890",
    )
    app = create_app(app_settings, clock=clock)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await app_ready(app)
        services: Services = app.state.services
        dev = await services.auth.create_key(SYSTEM_CALLER, name="dev", role=Role.DEVELOPER)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {dev.secret}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:

            async def comment(text: str) -> None:
                made = await http.post(
                    "/api/v1/decisions",
                    json={
                        "action": "comment",
                        "title": "comment",
                        "repo": REPO,
                        "params": {"body": text, "pull_number": 7},
                    },
                    headers=headers,
                )
                assert made.status_code == 201
                await run_pass(services)

            await comment("first")
            await comment("second")
            assert github.state.count("POST", r"/app/installations/67890/access_tokens") == 1
            clock.advance(minutes=56)  # within five minutes of the token's expiry
            github.state.installation_token_expires = "2026-11-22T11:00:00Z"
            await comment("third")
            assert github.state.count("POST", r"/app/installations/67890/access_tokens") == 2
    assert len(github.state.comments[f"{REPO}#issues/7"]) == 3
    assert github.state.count("POST", COMMENTS) == 3


async def test_a_decision_marked_approved_behind_the_rules_back_never_runs(
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    database_url: str,
) -> None:
    """Guarantee 3 without a side door: a decision whose status was set to approved in the
    store directly (no approvals, as its policy rule required) is refused when its run comes up."""
    decision = await propose(client, keys, environment="production")
    assert decision["status"] == "pending_approval"
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE decisions SET status = 'approved' WHERE id = :id"),
            {"id": decision["id"]},
        )
    await engine.dispose()
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "failed"
    assert run["error_code"] == "execution_approvals_missing"
    assert sum(github.state.calls.values()) == 0
    assert "run.refused" in await audit_actions(services, run["id"])
    assert await decision_status(client, keys, decision["id"]) == "failed"


async def test_a_comment_on_a_commit_is_posted_once_across_a_retry(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, clock: FakeClock
) -> None:
    sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    commit_comments = rf"/repos/{REPO}/commits/{sha}/comments"
    github.state.script[f"POST {commit_comments}"] = [Scripted(502, {"message": "Bad Gateway"})]
    decision = await propose(client, keys, params={"body": "this broke CI", "commit_sha": sha})
    await run_pass(services)
    clock.advance(seconds=11)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    (comment,) = github.state.comments[f"{REPO}#commits/{sha}"]
    assert comment["body"].startswith("this broke CI")
    assert run["idempotency_key"] in comment["body"]


async def test_a_worker_that_stalls_past_its_lease_does_not_act_after_the_takeover(  # noqa: PLR0917 - fixtures
    settings: Settings,
    clock: FakeClock,
    github: FakeGitHub,
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decision = await propose(client, keys)
    second = create_app(settings, clock=clock)
    looked_up = GitHubClient.issue_comments
    stalled = False

    async def look_then_stall(self: GitHubClient, repo: str, number: int) -> list[dict[str, Any]]:
        # The first worker has looked for an earlier comment and found none; it stalls
        # there past its lease, and another worker takes the run over and comments.
        nonlocal stalled
        found = await looked_up(self, repo, number)
        if not stalled:
            stalled = True
            clock.advance(seconds=301)
            assert await second.state.services.runs.run_due() == 1
        return found

    monkeypatch.setattr(GitHubClient, "issue_comments", look_then_stall)
    async with LifespanManager(second, startup_timeout=60, shutdown_timeout=60):
        await app_ready(second)
        await run_pass(services)

    assert github.state.count("POST", COMMENTS) == 1
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    assert [s["step"] for s in run["log"]][-2:] == ["comment", "finished"]
    assert await decision_status(client, keys, decision["id"]) == "succeeded"


async def test_metrics_count_runs_by_outcome(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    github.state.script["POST /repos/acme/web/issues/7/comments"] = [
        Scripted(403, {"message": "Resource not accessible by integration"})
    ]
    await propose(client, keys)
    await propose(client, keys, repo="acme/web")
    while await run_pass(services):
        pass

    scraped = await client.get("/metrics")

    runs = {
        labels["status"]: value
        for family in text_string_to_metric_families(scraped.text)
        for name, labels, value, *_ in family.samples
        if name == "dragon_runs"
    }
    assert (runs.get("succeeded"), runs.get("failed")) == (1, 1), runs
