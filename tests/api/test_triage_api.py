"""The gatekeeper endpoint over HTTP: any text in, classification, evidence, proposal, risk and
what the active policy would do out, and nothing created."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import Keys

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "ci_logs"
PRODUCTION_POLICY = """\
version: 1
name: strict
rules:
  - id: no-reverts-in-freeze
    match: {action: revert_pull_request}
    effect: deny
    reason: reverts are made by hand here
default:
  effect: require_approval
  approvals: 2
  roles: [approver, admin]
"""


async def nothing_was_created(client: httpx.AsyncClient, keys: Keys) -> None:
    for path in ("/api/v1/incidents", "/api/v1/decisions"):
        listed = await client.get(path, headers=keys.of("viewer"))
        assert listed.json()["items"] == []


async def test_a_ci_log_is_classified_with_evidence_risk_and_the_policy_outcome(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    log = (CORPUS / "flaky_infrastructure" / "dns_failure.log").read_text()
    response = await client.post(
        "/api/v1/triage",
        json={"text": log, "source": "gitlab", "repo": "acme/app", "branch": "feature/x"},
        headers=keys.of("developer"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["classification"] == "flaky_infrastructure"
    assert 0 < body["confidence"] <= 1
    assert any("Could not resolve host" in e["text"] for e in body["evidence"])
    assert body["proposed_action"]["action"] == "rerun_failed_jobs"
    assert body["proposed_action"]["params"]["repo"] == "acme/app"
    factors = {f["name"]: f["weight"] for f in body["risk"]["factors"]}
    assert factors["action_base"] == 10
    assert body["risk"]["score"] == sum(factors.values())
    assert body["policy"]["outcome"] == "auto"
    assert body["policy"]["rule"] == "low-risk-auto-approves"
    assert body["provenance"]["analyzer"] == "dragon-builtin"
    assert body["created"] is False
    await nothing_was_created(client, keys)


async def test_production_needs_two_approvers_from_the_listed_roles(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post(
        "/api/v1/triage",
        json={
            "text": "disk usage at 97% on checkout-db\nNo space left on device",
            "environment": "production",
        },
        headers=keys.of("developer"),
    )
    body = response.json()
    assert body["classification"] == "resource_exhaustion"
    assert body["proposed_action"]["action"] == "notify_owners"
    assert body["proposed_action"]["automatic"] is False
    assert body["policy"]["outcome"] == "needs_approval"
    assert body["policy"]["approvals_required"] == 2
    assert body["policy"]["approver_roles"] == ["approver", "admin"]
    assert "production_environment" in {f["name"] for f in body["risk"]["factors"]}


async def test_the_answer_follows_the_active_policy_including_a_denial(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    loaded = await client.put(
        "/api/v1/policy",
        content=PRODUCTION_POLICY,
        headers={**keys.of("admin"), "content-type": "application/yaml"},
    )
    assert loaded.status_code in (200, 201), loaded.text
    log = (CORPUS / "compile_error" / "gcc_syntax.log").read_text()
    response = await client.post(
        "/api/v1/triage",
        json={"text": log, "branch": "main", "commit_sha": "9f2c1e7a"},
        headers=keys.of("developer"),
    )
    body = response.json()
    assert body["proposed_action"]["action"] == "revert_pull_request"
    assert body["policy"]["outcome"] == "denied"
    assert body["policy"]["reason"] == "reverts are made by hand here"
    assert body["policy"]["approvals_required"] == 0


async def test_an_alert_with_a_runbook_label_proposes_that_runbook(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post(
        "/api/v1/triage",
        json={
            "text": "HighErrorRate firing for checkout",
            "source": "alertmanager",
            "labels": {"alertname": "HighErrorRate", "runbook": "restart-checkout"},
        },
        headers=keys.of("developer"),
    )
    body = response.json()
    assert body["proposed_action"]["action"] == "run_runbook"
    assert body["proposed_action"]["params"]["runbook"] == "restart-checkout"


async def test_support_evaluate_is_an_alias_taking_message_and_context(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    message = "our deploy fails: Error: DEPLOY_TOKEN is not set"
    aliased = await client.post(
        "/api/support/evaluate",
        json={"message": message, "context": {"repo": "acme/app", "branch": "main"}},
        headers=keys.of("developer"),
    )
    direct = await client.post(
        "/api/v1/triage",
        json={"text": message, "repo": "acme/app", "branch": "main"},
        headers=keys.of("developer"),
    )
    assert aliased.status_code == 200, aliased.text
    a, d = aliased.json(), direct.json()
    assert a["classification"] == d["classification"] == "missing_permission"
    assert a["proposed_action"] == d["proposed_action"]
    assert a["risk"] == d["risk"]
    assert a["policy"] == d["policy"]
    text_context = await client.post(
        "/api/support/evaluate",
        json={"message": "the nightly job broke", "context": "curl: (6) Could not resolve host"},
        headers=keys.of("developer"),
    )
    assert text_context.json()["classification"] == "flaky_infrastructure"
    await nothing_was_created(client, keys)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/support/evaluate", {"message": "x" * 10_001}, "message"),
        ("/api/support/evaluate", {"message": ""}, "message"),
        ("/api/support/evaluate", {"message": "hi", "approve": True}, "approve"),
        ("/api/v1/triage", {"text": ""}, "text"),
        ("/api/v1/triage", {"text": "x", "branch": "a..b"}, "branch"),
        ("/api/v1/triage", {}, "text"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, keys: Keys, path: str, body: dict[str, object], field: str
) -> None:
    response = await client.post(path, json=body, headers=keys.of("developer"))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert any(field in str(e) for e in problem["errors"])


async def test_a_viewer_may_not_use_the_gatekeeper(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post("/api/v1/triage", json={"text": "x"}, headers=keys.of("viewer"))
    assert response.status_code == 403
    assert response.json()["code"] == "role_insufficient"
