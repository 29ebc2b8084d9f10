"""A first end-to-end walk through the API: the spine works from proposal to approval."""

from __future__ import annotations

import httpx

from tests.conftest import Keys


async def test_developer_proposal_needing_two_approvals_is_approved_by_two_approvers(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    incident = await client.post(
        "/api/v1/incidents",
        json={"title": "deploy broke checkout", "severity": "SEV1", "environment": "production"},
        headers=keys.of("developer"),
    )
    assert incident.status_code == 201, incident.text
    proposed = await client.post(
        "/api/v1/decisions",
        json={
            "incident_id": incident.json()["id"],
            "action": "rollback_deployment",
            "title": "roll back checkout",
        },
        headers=keys.of("developer"),
    )
    assert proposed.status_code == 201, proposed.text
    decision = proposed.json()
    assert decision["status"] == "pending_approval"
    assert decision["policy"]["approvals_required"] == 2
    url = f"/api/v1/decisions/{decision['id']}"
    first = await client.post(
        f"{url}/approve", json={"justification": "rollback is safe"}, headers=keys.of("approver")
    )
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending_approval"
    second = await client.post(
        f"{url}/approve", json={"justification": "agreed"}, headers=keys.of("approver2")
    )
    assert second.json()["status"] == "approved"
    assert [a["principal_name"] for a in second.json()["approvals"]] == ["approver", "approver2"]
