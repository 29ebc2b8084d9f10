"""Runbooks: registration with field-named errors, immutable versions, runs that go through
policy, and steps carried out once each, resuming after the last finished step."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from dragon.services.container import Services
from dragon.workers.runs import run_pass
from tests.conftest import FakeClock, Keys
from tests.fake_github import FakeGitHub, Scripted
from tests.integration.test_runs import COMMENTS, REPO, run_of, settings

__all__ = ["settings"]  # the settings that point at the GitHub stand-in

MANIFEST: dict[str, Any] = {
    "name": "rerun-and-tell",
    "version": "1.0.0",
    "description": "Rerun the failed jobs, tell the pull request, ping the deploy hook",
    "parameters": [
        {"name": "workflow_run_id", "type": "integer", "description": "the failed run"},
        {"name": "pull_number", "type": "integer", "required": False, "default": 7},
    ],
    "steps": [
        {
            "id": "rerun",
            "action": "rerun_job",
            "with": {"workflow_run_id": "{{ params.workflow_run_id }}"},
        },
        {
            "id": "tell",
            "action": "comment",
            "with": {
                "body": "Dragon reran run {{ params.workflow_run_id }}",
                "pull_number": "{{ params.pull_number }}",
            },
        },
    ],
}


async def register(client: httpx.AsyncClient, keys: Keys, manifest: Any) -> httpx.Response:
    return await client.post("/api/v1/runbooks", json=manifest, headers=keys.of("admin"))


async def test_a_runbook_registers_and_its_versions_are_immutable(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first = await register(client, keys, MANIFEST)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == "/api/v1/runbooks/rerun-and-tell"
    again = await register(client, keys, {**MANIFEST, "description": "changed"})
    assert again.status_code == 409
    assert again.json()["code"] == "runbook_version_exists"
    newer = await register(client, keys, {**MANIFEST, "version": "1.1.0"})
    assert newer.status_code == 201
    listing = await client.get("/api/v1/runbooks", headers=keys.of("viewer"))
    assert [(r["name"], r["version"]) for r in listing.json()["items"]] == [
        ("rerun-and-tell", "1.1.0")
    ]
    versions = await client.get("/api/v1/runbooks/rerun-and-tell", headers=keys.of("viewer"))
    assert [r["version"] for r in versions.json()["items"]] == ["1.1.0", "1.0.0"]
    assert versions.json()["items"][1]["manifest"]["description"] == MANIFEST["description"]
    missing = await client.get("/api/v1/runbooks/nope", headers=keys.of("viewer"))
    assert missing.status_code == 404
    assert missing.json()["code"] == "runbook_not_found"


async def test_a_bad_manifest_names_every_field_with_the_expected_format_and_an_example(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    bad = copy.deepcopy(MANIFEST)
    bad["name"] = "Rerun And Tell"
    bad["version"] = "1.0"
    bad["owner"] = "sre"
    bad["steps"][0]["action"] = "format_disk"
    bad["steps"][1]["with"]["pull_number"] = "{{ params.pr }}"
    bad["parameters"][1]["default"] = "seven"
    response = await register(client, keys, bad)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "runbook_invalid"
    by_field = {e["field"]: e for e in problem["errors"]}
    assert set(by_field) == {
        "name",
        "version",
        "owner",
        "steps[0].action",
        "steps[1].with",
        "parameters[1].default",
    }
    assert by_field["owner"]["message"] == "unknown field"
    assert by_field["name"]["expected"] == "^[a-z][a-z0-9-]{0,63}$"
    assert by_field["name"]["example"] == "restart-flaky-ci"
    assert by_field["version"]["example"] == "1.0.0"
    assert "rerun_job" in by_field["steps[0].action"]["expected"]
    listing = await client.get("/api/v1/runbooks", headers=keys.of("viewer"))
    assert listing.json()["items"] == []


async def start(
    client: httpx.AsyncClient, keys: Keys, parameters: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        "/api/v1/runbooks/rerun-and-tell/runs",
        json={"parameters": parameters, "repo": REPO},
        headers=keys.of("developer"),
    )


async def test_a_runbook_run_is_a_decision_under_policy_and_each_step_acts_once(
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    clock: FakeClock,
) -> None:
    assert (await register(client, keys, MANIFEST)).status_code == 201
    wrong = await start(client, keys, {"workflow_run_id": "many"})
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "runbook_parameters_invalid"
    assert wrong.json()["errors"][0]["field"] == "parameters.workflow_run_id"

    made = await start(client, keys, {"workflow_run_id": 30433642})
    assert made.status_code == 201, made.text
    decision = made.json()
    assert decision["action"] == "run_runbook"
    assert decision["params"]["parameters"] == {"workflow_run_id": 30433642, "pull_number": 7}
    assert decision["status"] == "pending_approval"  # medium risk: one approval
    await run_pass(services)
    assert sum(github.state.calls.values()) == 0

    approved = await client.post(
        f"/api/v1/decisions/{decision['id']}/approve",
        json={"justification": "rerun is harmless"},
        headers=keys.of("approver"),
    )
    assert approved.json()["status"] == "approved"
    # The comment step fails once with a 502: the retry must not rerun the jobs again.
    github.state.script[f"POST {COMMENTS}"] = [Scripted(502, {"message": "Bad Gateway"})]
    await run_pass(services)
    assert (await run_of(client, keys, decision["id"]))["status"] == "queued"
    clock.advance(seconds=30)
    await run_pass(services)

    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    assert run["attempts"] == 2
    rerun = r"/repos/acme/api/actions/runs/30433642/rerun-failed-jobs"
    assert github.state.count("POST", rerun) == 1
    (comment,) = github.state.comments[f"{REPO}#issues/7"]
    assert comment["body"].startswith("Dragon reran run 30433642")
    steps = [(s["step"], s["status"]) for s in run["log"]]
    assert ("rerun", "reused") in steps
    assert ("tell", "ok") in steps
    assert run["result"]["runbook"] == "rerun-and-tell@1.0.0"


async def test_an_http_call_step_calls_once_with_the_steps_idempotency_key(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    hook = {
        "name": "poke-deploy",
        "version": "0.1.0",
        "description": "Call the deploy hook",
        "steps": [
            {
                "id": "poke",
                "action": "http_call",
                "with": {"method": "POST", "url": f"{github.url}/hooks/restart", "body": {"x": 1}},
            },
        ],
    }
    assert (await register(client, keys, hook)).status_code == 201
    made = await client.post(
        "/api/v1/runbooks/poke-deploy/runs", json={}, headers=keys.of("developer")
    )
    decision = made.json()
    await client.post(
        f"/api/v1/decisions/{decision['id']}/approve",
        json={"justification": "poke it"},
        headers=keys.of("approver"),
    )
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    assert github.state.calls["POST /hooks/restart"] == 1
    (sent,) = [v for k, v in github.state.bodies if k.endswith("idempotency-key")]
    assert sent == f"{run['idempotency_key']}-poke"
    assert run["result"]["steps"]["poke"]["status"] == 200
