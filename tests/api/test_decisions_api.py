"""Decisions through the API: the policy decides at proposal, approvals follow the rules
(role, separation of duties, quorum, expiry), and the original system's aliases keep working."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from dragon.api.schemas import DecisionOut, DecisionPage
from dragon.services.container import Services
from tests.conftest import FakeClock, Keys

MISSING_INCIDENT = "inc_" + "0" * 28
MISSING_DECISION = "dec_" + "0" * 28
LOW_RISK = {
    "action": "rerun_job",
    "title": "rerun the flaky integration job",
    "repo": "acme/shop",
    "branch": "feature/faster-checkout",
}
PRODUCTION = {
    "action": "rollback_deployment",
    "title": "roll back checkout",
    "environment": "production",
}


async def propose(
    client: httpx.AsyncClient, keys: Keys, who: str = "developer", **body: Any
) -> httpx.Response:
    return await client.post("/api/v1/decisions", json=body, headers=keys.of(who))


async def pending(client: httpx.AsyncClient, keys: Keys, who: str = "developer") -> dict[str, Any]:
    response = await propose(client, keys, who, **PRODUCTION)
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    assert decision["status"] == "pending_approval"
    return decision


async def verdict(
    client: httpx.AsyncClient,
    keys: Keys,
    decision_id: str,
    who: str,
    *,
    approve: bool = True,
    justification: str = "checked the rollout plan",
) -> httpx.Response:
    action = "approve" if approve else "reject"
    return await client.post(
        f"/api/v1/decisions/{decision_id}/{action}",
        json={"justification": justification},
        headers=keys.of(who),
    )


async def runnable(
    client: httpx.AsyncClient, keys: Keys, *, justification: str, **body: Any
) -> dict[str, Any]:
    """A decision the developer proposes and, where the policy wants an approval, the approver
    approves: what a worker may run. Returns the decision as proposed."""
    response = await propose(client, keys, **body)
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    if decision["status"] == "pending_approval":
        approved = await verdict(
            client, keys, decision["id"], "approver", justification=justification
        )
        assert approved.json()["status"] == "approved", approved.text
    return decision


async def read(client: httpx.AsyncClient, keys: Keys, decision_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/decisions/{decision_id}", headers=keys.of("viewer"))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def principal_id(client: httpx.AsyncClient, keys: Keys, who: str) -> str:
    found: str = (await client.get("/api/v1/me", headers=keys.of(who))).json()["id"]
    return found


async def audit(client: httpx.AsyncClient, keys: Keys, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=query, headers=keys.of("admin"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def open_incident(client: httpx.AsyncClient, keys: Keys, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "checkout is down", **body},
        headers=keys.of("developer"),
    )
    assert response.status_code == 201, response.text
    incident: dict[str, Any] = response.json()
    return incident


# ---- the policy decides at proposal -------------------------------------------------------------


async def test_low_risk_rerun_on_a_feature_branch_is_auto_approved(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await propose(client, keys, **LOW_RISK)
    assert response.status_code == 201
    decision = response.json()
    assert response.headers["location"] == f"/api/v1/decisions/{decision['id']}"
    assert decision["status"] == "auto_approved"
    assert decision["risk"]["level"] == "low"
    assert decision["risk"]["score"] == 10
    assert decision["policy"]["rule"] == "low-risk-auto-approves"
    assert decision["policy"]["approvals_required"] == 0
    assert decision["expires_at"] is None
    assert decision["proposer"]["name"] == "developer"


async def test_destructive_revert_on_main_is_denied_by_the_protected_branch_rule(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await propose(
        client, keys, action="revert_commit", title="revert the bad commit", branch="main"
    )
    assert response.status_code == 201
    decision = response.json()
    assert decision["status"] == "denied"
    assert decision["policy"]["rule"] == "deny-destructive-on-protected-branches"
    assert "pull request" in decision["policy"]["reason"]
    assert decision["decided_at"] is not None


async def test_production_decision_waits_for_two_approvals_until_its_deadline(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    decision = await pending(client, keys)
    assert decision["policy"]["rule"] == "production-requires-two-approvers"
    assert decision["policy"]["approvals_required"] == 2
    assert decision["policy"]["approver_roles"] == ["approver", "admin"]
    assert datetime.fromisoformat(decision["expires_at"]) == clock.now + timedelta(hours=24)
    assert decision["decided_at"] is None


async def test_decision_takes_the_environment_of_its_incident(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    incident = await open_incident(client, keys, environment="production")
    response = await propose(
        client, keys, incident_id=incident["id"], action="rerun_job", title="rerun the deploy"
    )
    assert response.status_code == 201
    decision = response.json()
    assert decision["environment"] == "production"
    assert decision["status"] == "pending_approval"
    assert decision["policy"]["rule"] == "production-requires-two-approvers"


async def test_decision_records_the_version_of_the_active_policy(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    policy = (await client.get("/api/v1/policy", headers=keys.of("viewer"))).json()
    decision = (await propose(client, keys, **LOW_RISK)).json()
    assert policy["version"].startswith("sha256:")
    assert decision["policy"]["version"] == policy["version"]


async def test_proposal_writes_proposed_and_outcome_audit_events(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await pending(client, keys)
    events = await audit(client, keys, target_id=decision["id"])
    assert [e["action"] for e in events] == ["decision.pending_approval", "decision.proposed"]
    assert {e["actor_id"] for e in events} == {await principal_id(client, keys, "developer")}
    assert events[0]["details"]["policy_version"] == decision["policy"]["version"]


# ---- who may give a verdict ---------------------------------------------------------------------


async def test_proposer_cannot_approve_their_own_decision_even_as_admin(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await pending(client, keys, who="admin")
    response = await verdict(client, keys, decision["id"], "admin")
    assert response.status_code == 403
    assert response.json()["code"] == "separation_of_duties"
    stored = await read(client, keys, decision["id"])
    assert stored["status"] == "pending_approval"
    assert stored["approvals"] == []
    refused = await audit(client, keys, action="approval.refused")
    assert len(refused) == 1
    assert refused[0]["target_id"] == decision["id"]
    assert refused[0]["actor_id"] == await principal_id(client, keys, "admin")
    assert refused[0]["details"]["code"] == "separation_of_duties"


async def test_proposer_cannot_reject_their_own_decision_either(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await pending(client, keys, who="approver")
    response = await verdict(client, keys, decision["id"], "approver", approve=False)
    assert response.status_code == 403
    assert response.json()["code"] == "separation_of_duties"
    assert (await read(client, keys, decision["id"]))["status"] == "pending_approval"


async def test_developer_cannot_approve(client: httpx.AsyncClient, keys: Keys) -> None:
    decision = await pending(client, keys)
    response = await verdict(client, keys, decision["id"], "developer2")
    assert response.status_code == 403
    assert response.json()["code"] == "role_insufficient"
    assert (await read(client, keys, decision["id"]))["approvals"] == []


# ---- quorum -------------------------------------------------------------------------------------


async def test_two_distinct_approvers_reach_the_quorum(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    decision = await pending(client, keys)
    first = await verdict(client, keys, decision["id"], "approver")
    assert first.status_code == 200
    assert first.json()["status"] == "pending_approval"
    clock.advance(minutes=5)
    second = await verdict(client, keys, decision["id"], "admin")
    assert second.status_code == 200
    approved = second.json()
    assert approved["status"] == "approved"
    assert datetime.fromisoformat(approved["decided_at"]) == clock.now
    assert [(a["principal_name"], a["verdict"]) for a in approved["approvals"]] == [
        ("approver", "approve"),
        ("admin", "approve"),
    ]
    events = await audit(client, keys, target_id=decision["id"], action="decision.approved")
    assert [e["actor_id"] for e in events] == [await principal_id(client, keys, "admin")]


async def test_the_same_approver_cannot_count_twice(client: httpx.AsyncClient, keys: Keys) -> None:
    decision = await pending(client, keys)
    assert (await verdict(client, keys, decision["id"], "approver")).status_code == 200
    again = await verdict(client, keys, decision["id"], "approver", justification="still fine")
    assert again.status_code == 409
    assert again.json()["code"] == "approval_duplicate"
    stored = await read(client, keys, decision["id"])
    assert stored["status"] == "pending_approval"
    assert len(stored["approvals"]) == 1


async def test_one_rejection_denies_and_settles_the_decision(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    decision = await pending(client, keys)
    assert (await verdict(client, keys, decision["id"], "approver")).status_code == 200
    clock.advance(seconds=1)
    rejected = await verdict(client, keys, decision["id"], "approver2", approve=False)
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "denied"
    late = await verdict(client, keys, decision["id"], "approver3")
    assert late.status_code == 409
    assert late.json()["code"] == "decision_not_pending"
    assert late.json()["current"] == "denied"
    stored = await read(client, keys, decision["id"])
    assert stored["status"] == "denied"
    assert [a["verdict"] for a in stored["approvals"]] == ["approve", "reject"]


async def test_auto_approved_decision_takes_no_verdicts(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = (await propose(client, keys, **LOW_RISK)).json()
    response = await verdict(client, keys, decision["id"], "approver")
    assert response.status_code == 409
    assert response.json()["code"] == "decision_not_pending"
    assert response.json()["status"] == 409
    assert response.json()["current"] == "auto_approved"


# ---- expiry -------------------------------------------------------------------------------------


async def test_verdict_just_before_the_deadline_counts(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    decision = await pending(client, keys)
    clock.advance(hours=23, minutes=59)
    response = await verdict(client, keys, decision["id"], "approver")
    assert response.status_code == 200
    assert len(response.json()["approvals"]) == 1


async def test_verdict_after_the_deadline_is_refused_and_the_decision_expires(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    decision = await pending(client, keys)
    clock.advance(hours=25)
    response = await verdict(client, keys, decision["id"], "approver")
    assert response.status_code == 409
    assert response.json()["code"] == "decision_expired"
    stored = await read(client, keys, decision["id"])
    assert stored["status"] == "expired"
    assert stored["approvals"] == []
    expired = await audit(client, keys, action="decision.expired")
    assert [(e["target_id"], e["actor_id"]) for e in expired] == [(decision["id"], "system")]


async def test_expiry_sweep_expires_only_overdue_pending_decisions(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock, services: Services
) -> None:
    overdue = [await pending(client, keys), await pending(client, keys)]
    runnable = (await propose(client, keys, **LOW_RISK)).json()
    clock.advance(hours=12)
    fresh = await pending(client, keys)
    clock.advance(hours=13)

    assert await services.decisions.expire_overdue() == 2
    assert await services.decisions.expire_overdue() == 0

    for decision in overdue:
        assert (await read(client, keys, decision["id"]))["status"] == "expired"
    assert (await read(client, keys, fresh["id"]))["status"] == "pending_approval"
    assert (await read(client, keys, runnable["id"]))["status"] == "auto_approved"
    events = await audit(client, keys, action="decision.expired")
    assert {e["target_id"] for e in events} == {d["id"] for d in overdue}
    assert {e["actor_id"] for e in events} == {"system"}


# ---- bad input ----------------------------------------------------------------------------------


async def test_verdict_without_a_justification_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await pending(client, keys)
    url = f"/api/v1/decisions/{decision['id']}/approve"
    for body in ({}, {"justification": "   "}):
        response = await client.post(url, json=body, headers=keys.of("approver"))
        assert response.status_code == 422, body
        problem = response.json()
        assert problem["code"] == "validation_failed"
        assert [e["field"] for e in problem["errors"]] == ["justification"]
    assert (await read(client, keys, decision["id"]))["approvals"] == []


async def test_unknown_action_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await propose(client, keys, action="drop_database", title="clean up")
    assert response.status_code == 422
    assert response.json()["code"] == "action_unknown"
    listed = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    assert listed.json()["items"] == []


async def test_unknown_body_field_is_named_in_the_errors(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await propose(client, keys, **LOW_RISK, execute_now=True)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert [(e["field"], e["message"]) for e in problem["errors"]] == [
        ("execute_now", "unknown field")
    ]


async def test_decision_for_a_missing_incident_is_404(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await propose(client, keys, **LOW_RISK, incident_id=MISSING_INCIDENT)
    assert response.status_code == 404
    assert response.json()["code"] == "incident_not_found"
    listed = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    assert listed.json()["items"] == []


async def test_missing_decision_is_404(client: httpx.AsyncClient, keys: Keys) -> None:
    read_missing = await client.get(
        f"/api/v1/decisions/{MISSING_DECISION}", headers=keys.of("viewer")
    )
    assert read_missing.status_code == 404
    assert read_missing.json()["code"] == "decision_not_found"
    approve_missing = await verdict(client, keys, MISSING_DECISION, "approver")
    assert approve_missing.status_code == 404
    assert approve_missing.json()["code"] == "decision_not_found"


# ---- compatibility aliases ----------------------------------------------------------------------


async def test_legacy_decisions_alias_proposes_without_a_title(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post(
        "/api/decisions", json={"action": "rerun_job"}, headers=keys.of("developer")
    )
    assert response.status_code == 201
    decision = response.json()
    assert decision["title"] == "rerun_job"
    assert decision["status"] == "auto_approved"
    assert response.headers["location"] == f"/api/v1/decisions/{decision['id']}"
    assert (await read(client, keys, decision["id"]))["action"] == "rerun_job"


async def test_legacy_approvals_alias_records_the_caller_not_the_body_approver(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    incident = await open_incident(client, keys, environment="production")
    decision = (
        await propose(client, keys, incident_id=incident["id"], action="rerun_job", title="rerun")
    ).json()
    response = await client.post(
        "/api/approvals",
        json={
            "incident_id": incident["id"],
            "decision_id": decision["id"],
            "approved": True,
            "approver": "admin",
            "justification": "rollout looks safe",
        },
        headers=keys.of("approver"),
    )
    assert response.status_code == 200
    [approval] = (await read(client, keys, decision["id"]))["approvals"]
    assert approval["principal_id"] == await principal_id(client, keys, "approver")
    assert approval["principal_name"] == "approver"
    assert approval["verdict"] == "approve"
    assert approval["justification"] == "rollout looks safe"


async def test_legacy_approvals_alias_with_approved_false_rejects(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await pending(client, keys)
    response = await client.post(
        "/api/approvals",
        json={"decision_id": decision["id"], "approved": False, "justification": "too risky"},
        headers=keys.of("approver"),
    )
    assert response.status_code == 200
    assert response.json()["status"] == "denied"
    assert [a["verdict"] for a in response.json()["approvals"]] == ["reject"]


async def test_legacy_approvals_alias_refuses_a_decision_of_another_incident(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    incident = await open_incident(client, keys, environment="production")
    other = await open_incident(client, keys, title="another incident")
    decision = (
        await propose(client, keys, incident_id=incident["id"], action="rerun_job", title="rerun")
    ).json()
    response = await client.post(
        "/api/approvals",
        json={
            "incident_id": other["id"],
            "decision_id": decision["id"],
            "approved": True,
            "justification": "looks fine",
        },
        headers=keys.of("approver"),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "decision_incident_mismatch"
    stored = await read(client, keys, decision["id"])
    assert stored["status"] == "pending_approval"
    assert stored["approvals"] == []


async def test_legacy_approvals_alias_keeps_separation_of_duties(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    decision = await pending(client, keys, who="admin")
    response = await client.post(
        "/api/approvals",
        json={
            "decision_id": decision["id"],
            "approved": True,
            "approver": "approver",
            "justification": "trust me",
        },
        headers=keys.of("admin"),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "separation_of_duties"
    assert (await read(client, keys, decision["id"]))["approvals"] == []


# ---- listing ------------------------------------------------------------------------------------


async def test_decisions_list_filters_by_status_and_pages_newest_first(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    waiting, runnable = [], []
    for _ in range(3):
        waiting.append((await pending(client, keys))["id"])
        clock.advance(seconds=1)
        runnable.append((await propose(client, keys, **LOW_RISK)).json()["id"])
        clock.advance(seconds=1)

    seen: list[str] = []
    params: dict[str, str | int] = {"status": "pending_approval", "limit": 2}
    pages = 0
    while True:
        page = await client.get("/api/v1/decisions", params=params, headers=keys.of("viewer"))
        assert page.status_code == 200
        body = page.json()
        assert {d["status"] for d in body["items"]} <= {"pending_approval"}
        seen += [d["id"] for d in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == waiting[::-1]
    assert pages == 2

    auto = await client.get(
        "/api/v1/decisions", params={"status": "auto_approved"}, headers=keys.of("viewer")
    )
    assert [d["id"] for d in auto.json()["items"]] == runnable[::-1]
    assert auto.json()["next_cursor"] is None


async def test_decisions_list_filters_by_incident(client: httpx.AsyncClient, keys: Keys) -> None:
    incident = await open_incident(client, keys)
    mine = await propose(client, keys, incident_id=incident["id"], **LOW_RISK)
    await propose(client, keys, **LOW_RISK)
    listed = await client.get(
        "/api/v1/decisions", params={"incident_id": incident["id"]}, headers=keys.of("viewer")
    )
    assert [d["id"] for d in listed.json()["items"]] == [mine.json()["id"]]


# ---- response bodies ----------------------------------------------------------------------------


def documented(model: type[DecisionOut] | type[DecisionPage], response: httpx.Response) -> str:
    """The body as the documented schema would write it: validated, then dumped again."""
    return model.model_validate_json(response.content).model_dump_json()


async def test_decision_bodies_are_exactly_the_documented_schema(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    clock.advance(seconds=0.000123)  # microseconds in every time the bodies carry
    incident = await open_incident(client, keys, severity="SEV1")
    proposed = await propose(
        client,
        keys,
        **PRODUCTION,
        incident_id=incident["id"],
        params={"deployment": "checkout", "replicas": 3, "nested": {"keep": [1, None]}},
        rationale="the last deploy broke checkout",
        confidence=0.75,
        risk={"factors": [{"name": "peak_hours", "weight": 10, "detail": "Friday evening"}]},
    )
    assert proposed.status_code == 201, proposed.text
    decision_id = proposed.json()["id"]
    approved = await verdict(client, keys, decision_id, "approver")
    detail = await client.get(f"/api/v1/decisions/{decision_id}", headers=keys.of("viewer"))
    listing = await client.get("/api/v1/decisions", headers=keys.of("viewer"))

    for single in (proposed, approved, detail):
        assert single.headers["content-type"] == "application/json"
        assert single.text == documented(DecisionOut, single)
    assert listing.text == documented(DecisionPage, listing)
    body = detail.json()
    assert body["approvals"][0]["via"] == "api"
    assert body["risk"]["factors"][-1] == {
        "name": "peak_hours",
        "weight": 10,
        "detail": "Friday evening",
    }
    assert body["expires_at"].endswith("Z")
    assert "." in body["created_at"]
    assert listing.json()["items"][0]["approvals"] is None
