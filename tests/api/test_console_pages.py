"""The console's pages: what each role sees, and every change going through the same use cases
as the API, with field errors next to their fields."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from dragon.services.container import Services
from dragon.services.playground_logs import TEST_FAILURE_ON_MAIN
from dragon.web import governance
from tests.api.console_session import csrf_of, log_in, page, post_form
from tests.api.test_ingestion import fixture, post_github
from tests.conftest import FakeClock, Keys

PRODUCTION = {
    "action": "rollback_deployment",
    "title": "roll back checkout",
    "environment": "production",
    "rationale": "error rate 12% since the deploy",
}


async def propose(client: httpx.AsyncClient, keys: Keys, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/decisions", json={**PRODUCTION, **body}, headers=keys.of("developer")
    )
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    return decision


async def approvals_of(client: httpx.AsyncClient, keys: Keys, decision_id: str) -> list[Any]:
    response = await client.get(f"/api/v1/decisions/{decision_id}", headers=keys.of("viewer"))
    approvals: list[Any] = response.json()["approvals"]
    return approvals


# ---- incidents ---------------------------------------------------------------------------------


async def test_incidents_list_filters_searches_and_pages(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    for n in range(30):
        clock.advance(seconds=1)
        response = await client.post(
            "/api/v1/incidents",
            json={"title": f"build {n} broke", "severity": "SEV1" if n % 3 == 0 else "SEV3"},
            headers=keys.of("developer"),
        )
        assert response.status_code == 201
    await log_in(client, keys.viewer)
    first = await page(client, "/incidents")
    assert first.text.count('<td><a href="/incidents/inc_') == 25
    cursor = re.search(r"cursor=(inc_[0-9a-z]+)", first.text)
    assert cursor
    second = await page(client, f"/incidents?cursor={cursor.group(1)}")
    assert second.text.count('<td><a href="/incidents/inc_') == 5
    assert "build 0 broke" in second.text
    sev1 = await page(client, "/incidents?severity=SEV1")
    assert sev1.text.count('<td><a href="/incidents/inc_') == 10
    found = await page(client, "/incidents?q=build+17")
    assert found.text.count('<td><a href="/incidents/inc_') == 1
    assert "build 17 broke" in found.text
    bad = await page(client, "/incidents?severity=SEV9")
    assert bad.status_code == 422
    assert "filter_invalid" in bad.text


async def test_incident_page_shows_the_timeline_of_signals_decisions_and_audit(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    response = await post_github(
        client, fixture("github", "workflow_run.completed.failure"), "workflow_run"
    )
    assert response.status_code == 202
    await services.processor.run_due()
    [incident] = (await client.get("/api/v1/incidents", headers=keys.of("viewer"))).json()["items"]
    await propose(client, keys, incident_id=incident["id"], action="rerun_job", title="rerun it")
    await log_in(client, keys.admin)
    detail = await page(client, f"/incidents/{incident['id']}")
    assert detail.status_code == 200
    assert "ci_failure from github" in detail.text
    assert "Decision proposed: rerun it (rerun_job)" in detail.text
    assert "incident.created" in detail.text
    assert "Open the CI run or alert" in detail.text
    missing = await page(client, "/incidents/inc_" + "0" * 28)
    assert missing.status_code == 404
    assert "<h1>no incident" in missing.text


# ---- approvals ---------------------------------------------------------------------------------


async def test_an_approver_approves_from_the_queue_and_the_audit_log_says_via_web(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await propose(client, keys)
    await log_in(client, keys.approver)
    queue = await page(client, "/approvals")
    assert decision["title"] in queue.text
    assert "production_environment" in queue.text  # the risk factors are shown
    assert 'value="approve"' in queue.text
    response = await post_form(
        client,
        f"/approvals/{decision['id']}",
        {"verdict": "approve", "justification": "the rollback plan is sound"},
        from_page="/approvals",
    )
    assert response.status_code == 303
    [approval] = await approvals_of(client, keys, decision["id"])
    assert (approval["principal_name"], approval["via"]) == ("approver", "web")
    events = (
        await client.get(
            "/api/v1/audit", params={"action": "approval.approved"}, headers=keys.of("admin")
        )
    ).json()["items"]
    assert events[0]["details"]["via"] == "web"


async def test_a_viewer_sees_no_verdict_buttons_and_a_forged_post_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await propose(client, keys)
    await log_in(client, keys.viewer)
    queue = await page(client, "/approvals")
    assert decision["title"] in queue.text
    assert 'value="approve"' not in queue.text
    assert 'value="reject"' not in queue.text
    # A valid session and CSRF token, but the role is not enough: refused by the server.
    token = csrf_of(queue.text)
    forged = await client.post(
        f"/approvals/{decision['id']}",
        data={"csrf_token": token, "verdict": "approve", "justification": "trust me"},
        headers={"accept": "text/html"},
    )
    assert forged.status_code == 403
    assert "role_insufficient" in forged.text
    assert await approvals_of(client, keys, decision["id"]) == []


async def test_separation_of_duties_holds_in_the_console(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post("/api/v1/decisions", json=PRODUCTION, headers=keys.of("approver"))
    decision = response.json()
    await log_in(client, keys.approver)
    refused = await post_form(
        client,
        f"/approvals/{decision['id']}",
        {"verdict": "approve", "justification": "my own idea"},
        from_page="/approvals",
    )
    assert refused.status_code == 403
    assert 'role="alert"' in refused.text
    assert await approvals_of(client, keys, decision["id"]) == []
    refusals = (
        await client.get(
            "/api/v1/audit", params={"action": "approval.refused"}, headers=keys.of("admin")
        )
    ).json()["items"]
    assert refusals[0]["details"]["via"] == "web"


async def test_a_verdict_without_a_justification_shows_the_error_next_to_the_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await propose(client, keys)
    await log_in(client, keys.approver)
    response = await post_form(
        client,
        f"/approvals/{decision['id']}",
        {"verdict": "approve", "justification": ""},
        from_page="/approvals",
    )
    assert response.status_code == 422
    assert f'id="{decision["id"]}-justification-error"' in response.text
    assert await approvals_of(client, keys, decision["id"]) == []


# ---- audit, policy, keys -----------------------------------------------------------------------


async def test_the_audit_viewer_shows_events_and_that_the_chain_verifies(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await propose(client, keys)
    await log_in(client, keys.admin)
    response = await page(client, "/audit")
    assert response.status_code == 200
    assert "Chain verified" in response.text
    assert "decision.pending_approval" in response.text
    filtered = await page(client, "/audit?action=decision.proposed")
    assert "decision.pending_approval" not in filtered.text


async def test_audit_and_keys_pages_are_for_admins_only(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await log_in(client, keys.approver)
    for path in ("/audit", "/keys"):
        response = await page(client, path)
        assert response.status_code == 403
        assert "role_insufficient" in response.text
    home = await page(client, "/")
    assert 'href="/keys"' not in home.text


async def test_the_policy_simulator_replays_recent_decisions_under_a_pasted_policy(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await propose(client, keys)
    await propose(client, keys, action="rerun_job", title="rerun", environment="staging")
    await log_in(client, keys.viewer)
    strict = "version: 1\nname: strict\ndefault:\n  effect: deny\n"
    response = await post_form(
        client, "/policy/simulate", {"source": strict, "last": "10"}, from_page="/policy"
    )
    assert response.status_code == 200, response.text
    assert "2 decisions replayed; 2 would be decided differently." in response.text
    assert "deny · rule default" in response.text
    assert "production-requires-two-approvers" in response.text
    policy = (await client.get("/api/v1/policy", headers=keys.of("viewer"))).json()
    assert policy["name"] == "default"  # nothing was activated


async def test_an_invalid_policy_shows_each_problem_with_its_line(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await log_in(client, keys.viewer)
    broken = (
        "version: 1\nname: x\nrules:\n  - id: Bad Id\n    effect: maybe\ndefault:\n  effect: deny\n"
    )
    response = await post_form(
        client, "/policy/simulate", {"source": broken, "last": "5"}, from_page="/policy"
    )
    assert response.status_code == 422
    assert 'id="source-error"' in response.text
    assert "line 4" in response.text


async def test_an_admin_issues_a_key_that_is_shown_once_then_revokes_it(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await log_in(client, keys.admin)
    created = await post_form(
        client, "/keys", {"name": "ci-bot", "role": "developer"}, from_page="/keys"
    )
    assert created.status_code == 201
    secret = re.search(r'value="(drg_[^"]+)"', created.text)
    assert secret
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret.group(1)}"})
    assert me.json()["role"] == "developer"
    listing = await page(client, "/keys")
    assert secret.group(1) not in listing.text
    key_id = next(
        k["id"]
        for k in (await client.get("/api/v1/keys", headers=keys.of("admin"))).json()
        if k["name"] == "ci-bot"
    )
    revoked = await post_form(client, f"/keys/{key_id}/revoke", {}, from_page="/keys")
    assert revoked.status_code == 303
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret.group(1)}"})
    assert me.status_code == 401


async def test_a_bad_key_name_is_shown_next_to_its_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await log_in(client, keys.admin)
    response = await post_form(
        client, "/keys", {"name": "has spaces", "role": "developer"}, from_page="/keys"
    )
    assert response.status_code == 422
    assert 'id="name-error"' in response.text


async def test_a_developer_acknowledges_then_resolves_from_the_incident_page(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    created = await client.post(
        "/api/v1/incidents", json={"title": "disk full"}, headers=keys.of("developer")
    )
    incident_id = created.json()["id"]
    await log_in(client, keys.viewer)
    assert "Acknowledge</button>" not in (await page(client, f"/incidents/{incident_id}")).text
    client.cookies.clear()
    await log_in(client, keys.developer)
    detail = f"/incidents/{incident_id}"
    assert "Acknowledge</button>" in (await page(client, detail)).text
    clock.advance(minutes=4)
    moved = await post_form(client, f"{detail}/acknowledge", {}, from_page=detail)
    assert moved.status_code == 303
    again = await post_form(client, f"{detail}/acknowledge", {}, from_page=detail)
    assert again.status_code == 409
    assert 'role="alert"' in again.text
    await post_form(client, f"{detail}/resolve", {}, from_page=detail)
    read = (await client.get(f"/api/v1/incidents/{incident_id}", headers=keys.of("viewer"))).json()
    assert read["status"] == "resolved"
    assert (await client.get("/api/v1/dashboard", headers=keys.of("viewer"))).json()[
        "mtta_seconds"
    ] == 240.0


async def test_a_long_chain_is_verified_on_request_rather_than_on_every_load(
    client: httpx.AsyncClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(governance, "VERIFY_ON_LOAD_UP_TO", 1)
    await propose(client, keys)
    await log_in(client, keys.admin)
    response = await page(client, "/audit")
    assert "Verify the chain now" in response.text
    assert "Chain verified" not in response.text
    verified = await page(client, "/audit?verify=1")
    assert "Chain verified" in verified.text


async def test_the_queue_shows_a_triaged_decisions_evidence_lines(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    event = {
        "source": "github",
        "kind": "ci_failure",
        "title": "tests broke on main",
        "repo": "acme/shop",
        "branch": "main",
        "commit": "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
        "job": "test",
        "log_excerpt": TEST_FAILURE_ON_MAIN,
    }
    sent = await client.post("/api/v1/events", json=event, headers=keys.of("developer"))
    assert sent.status_code == 202, sent.text
    await services.processor.run_due()
    assert await services.triage.run_pending() == 1
    await log_in(client, keys.viewer)
    queue = (await page(client, "/approvals")).text
    assert "classified the failure as <strong>test failure</strong>" in queue
    assert "FAILED tests/test_cart.py::test_total_is_rounded" in queue
    assert re.search(r"<li>line \d+: <code>FAILED tests/test_cart\.py", queue)
    assert "(rule test_failure.pytest_failed_test, +7)" in queue


async def test_an_incident_opened_by_hand_counts_no_signals_on_its_page_and_in_the_api(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    made = await client.post(
        "/api/v1/incidents", json={"title": "disk full on db-1"}, headers=keys.of("developer")
    )
    assert made.status_code == 201, made.text
    incident = made.json()
    signals = await client.get(
        f"/api/v1/incidents/{incident['id']}/signals", headers=keys.of("viewer")
    )
    assert (incident["signal_count"], signals.json()) == (0, [])

    await log_in(client, keys.viewer)
    detail = await page(client, f"/incidents/{incident['id']}")
    assert detail.status_code == 200
    assert re.search(r"<dt>Signals</dt>\s*<dd>0</dd>", detail.text), detail.text
