"""The policy through the API: read it, replace it (YAML or JSON), see its versions, and see
decisions keep the version they were evaluated under."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from dragon.app import create_app
from dragon.domain.default_policy import DEFAULT_POLICY_TEXT
from dragon.settings import Settings
from tests.conftest import FakeClock, Keys
from tests.support.readiness import app_ready

FREEZE = """\
version: 1
name: change-freeze
rules:
  - id: freeze-needs-an-admin
    description: During the freeze every change needs an admin.
    effect: require_approval
    approvals: 1
    roles: [admin]
    expires_in: 4h
default:
  effect: deny
"""
TYPO = """\
version: 1
name: typo
rules:
  - id: deny-everything
    efect: deny
default:
  effect: deny
"""
LOW_RISK = {
    "action": "rerun_job",
    "title": "rerun the flaky job",
    "branch": "feature/faster-checkout",
}
DEFAULT_RULES = [
    "deny-destructive-on-protected-branches",
    "production-requires-two-approvers",
    "critical-risk-requires-two-approvals",
    "high-risk-requires-approval",
    "medium-risk-requires-approval",
    "low-risk-auto-approves",
    "default",
]


def yaml_headers(keys: Keys, who: str = "admin") -> dict[str, str]:
    return {**keys.of(who), "Content-Type": "application/yaml"}


async def put_policy(
    client: httpx.AsyncClient, keys: Keys, text: str, who: str = "admin"
) -> httpx.Response:
    return await client.put("/api/v1/policy", content=text, headers=yaml_headers(keys, who))


async def current(client: httpx.AsyncClient, keys: Keys) -> dict[str, Any]:
    response = await client.get("/api/v1/policy", headers=keys.of("viewer"))
    assert response.status_code == 200
    policy: dict[str, Any] = response.json()
    return policy


async def versions(client: httpx.AsyncClient, keys: Keys) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/policy/versions", headers=keys.of("viewer"))
    assert response.status_code == 200
    listed: list[dict[str, Any]] = response.json()
    return listed


async def propose(client: httpx.AsyncClient, keys: Keys, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/decisions", json=body, headers=keys.of("developer"))
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    return decision


async def principal_id(client: httpx.AsyncClient, keys: Keys, who: str) -> str:
    found: str = (await client.get("/api/v1/me", headers=keys.of(who))).json()["id"]
    return found


def version_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ---- reading ------------------------------------------------------------------------------------


async def test_viewer_reads_the_default_policy_with_its_version_and_rules(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    policy = await current(client, keys)
    assert policy["version"] == version_of(DEFAULT_POLICY_TEXT)
    assert policy["name"] == "default"
    assert policy["source"] == DEFAULT_POLICY_TEXT
    assert [r["id"] for r in policy["rules"]] == DEFAULT_RULES
    production = policy["rules"][1]
    assert (production["effect"], production["approvals"], production["roles"]) == (
        "require_approval",
        2,
        ["approver", "admin"],
    )
    assert policy["activated_by"] == "system"


# ---- replacing ----------------------------------------------------------------------------------


async def test_admin_activates_a_yaml_policy_and_gets_its_version(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    clock.advance(minutes=1)
    response = await put_policy(client, keys, FREEZE)
    assert response.status_code == 200
    activated = response.json()
    assert activated["version"] == version_of(FREEZE)
    assert activated["name"] == "change-freeze"
    assert [r["id"] for r in activated["rules"]] == ["freeze-needs-an-admin", "default"]
    assert activated["activated_by"] == await principal_id(client, keys, "admin")
    assert datetime.fromisoformat(activated["activated_at"]) == clock.now
    assert (await current(client, keys))["version"] == version_of(FREEZE)


async def test_decisions_use_the_new_policy_and_earlier_ones_keep_theirs(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    before = await propose(client, keys, **LOW_RISK)
    clock.advance(minutes=1)
    assert (await put_policy(client, keys, FREEZE)).status_code == 200

    after = await propose(client, keys, **LOW_RISK)
    assert after["status"] == "pending_approval"
    assert after["policy"]["version"] == version_of(FREEZE)
    assert after["policy"]["rule"] == "freeze-needs-an-admin"
    assert after["policy"]["approver_roles"] == ["admin"]
    assert datetime.fromisoformat(after["expires_at"]) == clock.now + timedelta(hours=4)

    earlier = await client.get(f"/api/v1/decisions/{before['id']}", headers=keys.of("viewer"))
    assert earlier.json()["status"] == "auto_approved"
    assert earlier.json()["policy"]["version"] == version_of(DEFAULT_POLICY_TEXT)
    assert earlier.json()["policy"]["rule"] == "low-risk-auto-approves"


async def test_a_rules_approver_roles_are_enforced(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    clock.advance(minutes=1)
    assert (await put_policy(client, keys, FREEZE)).status_code == 200
    decision = await propose(client, keys, **LOW_RISK)
    url = f"/api/v1/decisions/{decision['id']}/approve"
    body = {"justification": "freeze exception agreed"}
    by_approver = await client.post(url, json=body, headers=keys.of("approver"))
    assert by_approver.status_code == 403
    assert by_approver.json()["code"] == "role_insufficient"
    by_admin = await client.post(url, json=body, headers=keys.of("admin"))
    assert by_admin.status_code == 200
    assert by_admin.json()["status"] == "approved"


async def test_pending_decision_keeps_the_quorum_of_the_rule_it_was_evaluated_under(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    decision = await propose(
        client, keys, action="rollback_deployment", title="roll back", environment="production"
    )
    assert decision["policy"]["approvals_required"] == 2
    clock.advance(minutes=1)
    assert (await put_policy(client, keys, FREEZE)).status_code == 200
    url = f"/api/v1/decisions/{decision['id']}/approve"
    first = await client.post(
        url, json={"justification": "rollback is safe"}, headers=keys.of("approver")
    )
    assert first.json()["status"] == "pending_approval"
    second = await client.post(
        url, json={"justification": "rollback is safe"}, headers=keys.of("approver2")
    )
    assert second.json()["status"] == "approved"
    assert second.json()["policy"]["version"] == version_of(DEFAULT_POLICY_TEXT)


async def test_policy_can_be_sent_as_json(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    clock.advance(minutes=1)
    response = await client.put("/api/v1/policy", json={"source": FREEZE}, headers=keys.of("admin"))
    assert response.status_code == 200
    assert response.json()["version"] == version_of(FREEZE)
    assert (await current(client, keys))["name"] == "change-freeze"


async def test_versions_are_listed_newest_first_with_only_the_newest_active(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    clock.advance(minutes=1)
    assert (await put_policy(client, keys, FREEZE)).status_code == 200
    listed = await versions(client, keys)
    assert [(v["version"], v["active"]) for v in listed] == [
        (version_of(FREEZE), True),
        (version_of(DEFAULT_POLICY_TEXT), False),
    ]
    assert [v["created_by"] for v in listed] == [
        await principal_id(client, keys, "admin"),
        "system",
    ]


async def test_activation_is_audited_with_the_previous_version(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    clock.advance(minutes=1)
    assert (await put_policy(client, keys, FREEZE)).status_code == 200
    response = await client.get(
        "/api/v1/audit", params={"action": "policy.activated"}, headers=keys.of("admin")
    )
    newest, first = response.json()["items"]
    assert newest["actor_id"] == await principal_id(client, keys, "admin")
    assert newest["details"]["version"] == version_of(FREEZE)
    assert newest["details"]["previous_version"] == version_of(DEFAULT_POLICY_TEXT)
    assert first["actor_id"] == "system"
    assert first["details"]["previous_version"] is None


# ---- refusing -----------------------------------------------------------------------------------


async def test_invalid_policy_is_refused_with_the_line_of_each_problem(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await put_policy(client, keys, TYPO)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "policy_invalid"
    typo = [p for p in problem["problems"] if "efect" in p["message"]]
    assert len(typo) == 1
    assert typo[0]["line"] == 5
    assert typo[0]["path"] == "rules[0].efect"
    assert "did you mean 'effect'" in typo[0]["message"]
    assert (await current(client, keys))["version"] == version_of(DEFAULT_POLICY_TEXT)
    assert len(await versions(client, keys)) == 1


async def test_policy_that_is_not_yaml_is_refused_with_its_line(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await put_policy(client, keys, "version: 1\nname: broken\nrules: [\n")
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "policy_invalid"
    assert problem["problems"][0]["message"].startswith("not valid YAML")
    assert problem["problems"][0]["line"] == 4


async def test_approver_cannot_replace_the_policy(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await put_policy(client, keys, FREEZE, who="approver")
    assert response.status_code == 403
    assert response.json()["code"] == "role_insufficient"
    assert (await current(client, keys))["version"] == version_of(DEFAULT_POLICY_TEXT)


async def test_unsupported_content_type_is_refused(client: httpx.AsyncClient, keys: Keys) -> None:
    for content_type in ("text/html", "application/x-www-form-urlencoded"):
        response = await client.put(
            "/api/v1/policy",
            content=FREEZE,
            headers={**keys.of("admin"), "Content-Type": content_type},
        )
        assert response.status_code == 422, content_type
        assert response.json()["code"] == "content_type_unsupported", content_type
    assert len(await versions(client, keys)) == 1


async def test_json_body_without_source_is_refused(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.put("/api/v1/policy", json={"policy": FREEZE}, headers=keys.of("admin"))
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert {(e["location"], e["field"], e["message"]) for e in problem["errors"]} == {
        ("body", "source", "Field required"),
        ("body", "policy", "unknown field"),
    }
    assert len(await versions(client, keys)) == 1


async def test_malformed_json_policy_body_is_refused(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.put(
        "/api/v1/policy",
        content=b'{"source": ',
        headers={**keys.of("admin"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "json_invalid"
    assert len(await versions(client, keys)) == 1


async def test_a_policy_another_replica_activates_governs_the_next_proposal_here(
    client: httpx.AsyncClient, keys: Keys, settings: Settings, clock: FakeClock
) -> None:
    """Each replica keeps its own parsed copies by version: a change made on another one (here
    a second app on the same store), and a change back to a version this one already parsed,
    both govern this replica's very next proposal."""
    assert (await propose(client, keys, **LOW_RISK))["policy"]["rule"] == "low-risk-auto-approves"
    other = create_app(settings, clock=clock)
    async with LifespanManager(other, startup_timeout=60, shutdown_timeout=60):
        await app_ready(other)
        transport = httpx.ASGITransport(app=other, client=("203.0.113.8", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://other.test") as peer:
            clock.advance(minutes=1)
            assert (await put_policy(peer, keys, FREEZE)).status_code == 200
            frozen = await propose(client, keys, **LOW_RISK)
            clock.advance(minutes=1)
            assert (await put_policy(peer, keys, DEFAULT_POLICY_TEXT)).status_code == 200
            thawed = await propose(client, keys, **LOW_RISK)

    assert frozen["status"] == "pending_approval"
    assert (frozen["policy"]["version"], frozen["policy"]["rule"]) == (
        version_of(FREEZE),
        "freeze-needs-an-admin",
    )
    assert thawed["status"] == "auto_approved"
    assert thawed["policy"]["version"] == version_of(DEFAULT_POLICY_TEXT)
