"""The outcome check: after an action on a CI failure, the next CI result on the same
fingerprint records "fixed by <run>" or "did not help", and "did not help" escalates."""

from __future__ import annotations

from typing import Any

import httpx

from dragon.domain.ports import AuditQuery, DecisionQuery
from dragon.services.container import Services
from dragon.workers.runs import run_pass
from tests.conftest import FakeClock, Keys
from tests.fake_github import FakeGitHub
from tests.integration.test_runs import REPO, outbox_events, run_of, settings

__all__ = ["settings"]


async def ci(
    client: httpx.AsyncClient, keys: Keys, services: Services, *, kind: str, commit: str
) -> None:
    event: dict[str, Any] = {
        "source": "github",
        "kind": kind,
        "title": f"CI {kind} on {REPO}",
        "repo": REPO,
        "branch": "feature/x",
        "commit": commit,
        "pipeline": "CI",
        "job": "lint",
    }
    response = await client.post("/api/v1/events", json=event, headers=keys.of("developer"))
    assert response.status_code == 202, response.text
    await services.processor.run_due()


async def act_on_the_failure(
    client: httpx.AsyncClient, keys: Keys, services: Services, clock: FakeClock
) -> tuple[str, dict[str, Any]]:
    await ci(client, keys, services, kind="ci_failure", commit="a" * 40)
    listed = await client.get("/api/v1/incidents", headers=keys.of("viewer"))
    (incident,) = listed.json()["items"]
    made = await client.post(
        "/api/v1/decisions",
        json={
            "action": "comment",
            "title": "tell the PR",
            "incident_id": incident["id"],
            "params": {"body": "Dragon looked at this", "pull_number": 7},
        },
        headers=keys.of("developer"),
    )
    decision: dict[str, Any] = made.json()
    assert decision["status"] == "auto_approved"
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded"
    clock.advance(minutes=5)
    return incident["id"], run


async def test_a_green_run_after_the_action_records_fixed_by_the_run(
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    clock: FakeClock,
) -> None:
    incident_id, run = await act_on_the_failure(client, keys, services, clock)
    await run_pass(services)
    assert (await run_of(client, keys, run["decision_id"]))["outcome"] is None  # no result yet

    await ci(client, keys, services, kind="ci_recovery", commit="b" * 40)
    await run_pass(services)

    assert (await run_of(client, keys, run["decision_id"]))["outcome"] == "fixed"
    (event,) = await services.audit.find(AuditQuery(action="incident.fixed"))
    assert event.target_id == incident_id
    assert event.details["summary"] == f"fixed by {run['id']}"
    escalations, _ = await services.decisions.find(DecisionQuery(action="escalate"))
    assert escalations == []


async def test_another_failure_after_the_action_records_did_not_help_and_escalates(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    clock: FakeClock,
    database_url: str,
) -> None:
    incident_id, run = await act_on_the_failure(client, keys, services, clock)
    await ci(client, keys, services, kind="ci_failure", commit="c" * 40)
    await run_pass(services)
    await run_pass(services)  # a second pass records nothing twice

    assert (await run_of(client, keys, run["decision_id"]))["outcome"] == "did_not_help"
    (event,) = await services.audit.find(AuditQuery(action="incident.did_not_help"))
    assert event.target_id == incident_id
    (escalation,) = (await services.decisions.find(DecisionQuery(action="escalate")))[0]
    assert escalation.incident_id == incident_id
    assert escalation.provenance == {"via": "outcome_check", "run_id": run["id"]}
    assert (await outbox_events(database_url)).count("incident.did_not_help") == 1
