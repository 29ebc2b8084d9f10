"""The public playground: the real built-in analyzer, risk model and default policy (never the
LLM), isolated from real data, limited per address."""

from __future__ import annotations

from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from dragon.app import create_app
from dragon.services.container import Services
from dragon.settings import Settings
from tests.api.console_session import page
from tests.conftest import FakeClock, Keys
from tests.support.openai_server import running_openai_server
from tests.support.readiness import app_ready

ROLLBACK = {
    "title": "Roll checkout back",
    "action": "rollback_deployment",
    "rationale": "error rate 12%",
    "impact": "yesterday's release serves production",
    "environment": "production",
}


async def judge(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/v1/playground/decisions", json=body)


async def test_a_production_rollback_needs_two_approvers_and_is_never_executed(
    client: httpx.AsyncClient,
) -> None:
    response = await judge(client, ROLLBACK)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["risk_score"], body["risk_level"]) == (80, "critical")
    assert [f["name"] for f in body["risk_factors"]] == ["action_base", "production_environment"]
    assert body["outcome"] == "require_approval"
    assert body["policy_rule"] == "production-requires-two-approvers"
    assert (body["approvals_required"], body["approver_roles"]) == (2, ["approver", "admin"])
    assert body["executed"] is False


async def test_the_verdicts_match_what_the_real_decision_api_decides(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    cases = [
        {"title": "rerun", "action": "rerun_job", "branch": "feature/x"},
        {"title": "revert", "action": "revert_commit", "branch": "main"},
        {"title": "runbook", "action": "run_runbook", "environment": "staging"},
        ROLLBACK,
    ]
    expected = {"auto_approved": "auto_approve", "pending_approval": "require_approval"}
    for case in cases:
        played = (await judge(client, case)).json()
        real = (
            await client.post("/api/v1/decisions", json=case, headers=keys.of("developer"))
        ).json()
        assert played["risk_score"] == real["risk"]["score"], case
        assert played["policy_rule"] == real["policy"]["rule"], case
        assert played["outcome"] == expected.get(real["status"], "deny"), case


async def test_the_playground_touches_no_real_data(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    before = await services.dashboard.change_marker()
    for _ in range(3):
        assert (await judge(client, ROLLBACK)).status_code == 201
    assert await services.dashboard.change_marker() == before  # no audit event, no write
    decisions = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    assert decisions.json()["items"] == []


async def test_stats_are_real_counts_and_entries_expire_after_a_day(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    assert (await client.get("/api/v1/playground/stats")).json()["total"] == 0
    await judge(client, ROLLBACK)
    await judge(client, {"title": "rerun", "action": "rerun_job", "branch": "feature/x"})
    stats = (await client.get("/api/v1/playground/stats")).json()
    assert stats["total"] == 2
    assert stats["by_outcome"] == {"require_approval": 1, "auto_approve": 1}
    clock.advance(hours=23)
    assert (await client.get("/api/v1/playground/stats")).json()["total"] == 2
    clock.advance(hours=2)
    assert (await client.get("/api/v1/playground/stats")).json()["total"] == 0


async def test_scenarios_are_listed_under_both_paths_and_each_one_judges(
    client: httpx.AsyncClient,
) -> None:
    current = (await client.get("/api/v1/playground/scenarios")).json()
    legacy = (await client.get("/api/playground/scenarios")).json()
    assert current == legacy
    assert len(current) >= 4
    outcomes = set()
    for scenario in current:
        response = await client.post("/api/playground/submit-decision", json=scenario["proposal"])
        assert response.status_code == 201, response.text
        outcomes.add(response.json()["outcome"])
    assert outcomes == {"auto_approve", "require_approval", "deny"}


async def test_bad_proposals_get_field_errors(client: httpx.AsyncClient) -> None:
    response = await judge(client, {"title": "", "action": "Launch Missiles!"})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"title", "action"} <= fields
    unknown = await judge(client, {"title": "x", "action": "format_disk"})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "action_unknown"


async def test_ten_an_hour_per_address_then_429_with_retry_after(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 5000))
    other = httpx.ASGITransport(app=app, client=("198.51.100.21", 5000))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as visitor,
        httpx.AsyncClient(transport=other, base_url="http://dragon.test") as neighbour,
    ):
        remaining = []
        for n in range(10):
            path = "/api/v1/playground/decisions" if n % 2 else "/api/playground/submit-decision"
            response = await visitor.post(path, json=ROLLBACK)
            assert response.status_code == 201, response.text
            assert response.headers["x-ratelimit-limit"] == "10"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == list(range(9, -1, -1))
        refused = await visitor.post("/api/v1/playground/decisions", json=ROLLBACK)
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) > 0
        assert "x-ratelimit-reset" in refused.headers
        stats = (await visitor.get("/api/v1/playground/stats")).json()
        assert stats["total"] == 10  # the refused one was not judged
        assert (await neighbour.post("/api/v1/playground/decisions", json=ROLLBACK)).is_success


async def test_the_playground_page_needs_no_login(client: httpx.AsyncClient) -> None:
    response = await page(client, "/playground")
    assert response.status_code == 200
    assert 'id="playground-form"' in response.text
    assert "Roll checkout back to the previous release" in response.text
    assert 'id="playground-log-form"' in response.text
    assert 'value="ci-test-on-main"' in response.text
    assert "0 from CI logs." in response.text


# ---- the built-in analyzer -------------------------------------------------------------------


async def ci_scenarios(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    listed = (await client.get("/api/v1/playground/scenarios")).json()
    found = [s for s in listed if s["kind"] == "ci_log"]
    assert len(found) >= 4
    return found


async def test_a_ci_log_gets_the_same_answer_as_triage_would_give_it(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    """The playground's analyzer, risk and policy are the real ones: the gatekeeper
    (`POST /api/v1/triage`, the default policy active) says the same of every preset log."""
    classes = set()
    for scenario in await ci_scenarios(client):
        body = scenario["proposal"]
        played = await judge(client, body)
        assert played.status_code == 201, played.text
        mine = played.json()
        triaged = await client.post(
            "/api/v1/triage",
            json={
                "text": body["log"],
                "source": body.get("source", "github"),
                "repo": body.get("repo"),
                "branch": body.get("branch"),
                "commit_sha": body.get("commit_sha"),
            },
            headers=keys.of("developer"),
        )
        real = triaged.json()
        analysis = mine["analysis"]
        assert analysis["analyzer"] == "dragon-builtin"
        assert analysis["classification"] == real["classification"], scenario["id"]
        assert analysis["confidence"] == real["confidence"]
        assert analysis["evidence"] == real["evidence"]
        assert analysis["proposed_action"] == real["proposed_action"]["action"] == mine["action"]
        assert mine["risk_score"] == real["risk"]["score"]
        assert mine["risk_factors"] == real["risk"]["factors"]
        assert mine["policy_rule"] == real["policy"]["rule"]
        assert mine["approver_roles"] == real["policy"]["approver_roles"]
        assert mine["executed"] is False
        classes.add(analysis["classification"])
    assert {"lint_format", "flaky_infrastructure", "test_failure"} <= classes


async def test_a_pasted_log_shows_its_evidence_lines_and_who_must_approve(
    client: httpx.AsyncClient,
) -> None:
    log = "collected 3 items\n" + "E       assert 1 == 2\n" + "FAILED tests/test_a.py::test_b\n"
    response = await judge(
        client,
        {"log": log, "repo": "acme/shop", "branch": "main", "commit_sha": "4f2a9c1e8b7d"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    analysis = body["analysis"]
    assert analysis["classification"] == "test_failure"
    assert [e["line"] for e in analysis["evidence"]] == [2, 3]
    assert analysis["evidence"][1]["text"] == "FAILED tests/test_a.py::test_b"
    assert body["action"] == "revert_pull_request"
    assert body["approval_needed"] is True
    assert body["approver_roles"]  # from whom, by name
    assert {f["name"] for f in body["risk_factors"]} >= {"action_base", "protected_branch"}


async def test_a_log_and_a_proposed_action_are_two_separate_ways_in(
    client: httpx.AsyncClient,
) -> None:
    both = await judge(client, {**ROLLBACK, "log": "Error: exit code 1"})
    assert both.status_code == 422
    assert {e["field"] for e in both.json()["errors"]} == {
        "title",
        "action",
        "rationale",
        "impact",
        "environment",
    }
    stray = await judge(client, {**ROLLBACK, "commit_sha": "4f2a9c1e8b7d"})
    assert stray.status_code == 422
    assert [e["field"] for e in stray.json()["errors"]] == ["commit_sha"]
    neither = await judge(client, {"repo": "acme/shop"})
    assert neither.status_code == 422
    assert {e["field"] for e in neither.json()["errors"]} == {"title", "action"}
    huge = await judge(client, {"log": "x" * (64 * 1024 + 1)})
    assert huge.status_code == 422
    stats = (await client.get("/api/v1/playground/stats")).json()
    assert stats["total"] == 0


async def test_stats_count_the_analyzed_logs_by_classification(
    client: httpx.AsyncClient,
) -> None:
    for scenario in await ci_scenarios(client):
        assert (await judge(client, scenario["proposal"])).status_code == 201
    assert (await judge(client, ROLLBACK)).status_code == 201
    stats = (await client.get("/api/v1/playground/stats")).json()
    assert stats["total"] == len(await ci_scenarios(client)) + 1
    assert stats["analyzed"] == len(await ci_scenarios(client))
    assert sum(stats["by_classification"].values()) == stats["analyzed"]
    assert stats["by_classification"]["test_failure"] == 1


async def test_the_playground_never_asks_the_llm_even_when_one_is_configured(
    settings: Settings, clock: FakeClock
) -> None:
    async with running_openai_server() as openai:
        configured = settings.model_copy(
            update={"llm_base_url": openai.url, "llm_api_key": SecretStr("sk-test-key-0123")}
        )
        application = create_app(configured, clock=clock)
        async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
            await app_ready(application)
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for scenario in await ci_scenarios(client):
                    response = await judge(client, scenario["proposal"])
                    assert response.json()["analysis"]["analyzer"] == "dragon-builtin"
        assert openai.requests == []
