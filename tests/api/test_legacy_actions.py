"""The original system's /api/generate, /api/pr and /api/create-autofix-pr: they propose
decisions that go through policy and approvals, and never act directly."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dragon.services.container import Services
from tests.conftest import Keys

GOOD = {"repo": "acme/api", "branch": "feature/x", "file_path": "src/app.py"}


async def test_create_autofix_pr_proposes_a_decision_and_acts_on_nothing(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    response = await client.post("/api/create-autofix-pr", json=GOOD, headers=keys.of("developer"))
    assert response.status_code == 201, response.text
    decision = response.json()
    assert response.headers["location"] == f"/api/v1/decisions/{decision['id']}"
    assert decision["action"] == "open_autofix_pr"
    assert decision["params"] == {
        "repo": "acme/api",
        "branch": "feature/x",
        "paths": ["src/app.py"],
    }
    assert decision["status"] in ("auto_approved", "pending_approval")
    assert decision["policy"]["version"].startswith("sha256:")
    # Nothing is executed by the request itself: no run exists until a worker pass.
    runs = await client.get("/api/v1/runs", headers=keys.of("viewer"))
    assert runs.json()["items"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repo", "acme"),
        ("repo", "acme/api/extra"),
        ("repo", "../api"),
        ("repo", "acme/.."),
        ("branch", "feature/../main"),
        ("branch", "-rf"),
        ("file_path", "../secrets.env"),
        ("file_path", "src/../../etc/passwd"),
        ("file_path", "/etc/passwd"),
        ("file_path", "src\\app.py"),
        ("file_path", ""),
    ],
)
async def test_create_autofix_pr_refuses_a_bad_field_with_422_naming_it(
    client: httpx.AsyncClient, keys: Keys, field: str, value: str
) -> None:
    response = await client.post(
        "/api/create-autofix-pr", json={**GOOD, field: value}, headers=keys.of("developer")
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert [e["field"] for e in problem["errors"]] == [field]
    decisions = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    assert decisions.json()["items"] == []


async def test_pr_with_a_commit_proposes_a_revert_and_without_one_an_autofix(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    revert = await client.post(
        "/api/pr",
        json={"repo": "acme/api", "branch": "main", "commit_sha": "6dcb09b5b57875f3"},
        headers=keys.of("developer"),
    )
    assert revert.status_code == 201, revert.text
    assert revert.json()["action"] == "open_revert_pr"
    assert revert.json()["params"]["commit_sha"] == "6dcb09b5b57875f3"
    # A revert on main is medium risk or more: a person must approve it.
    assert revert.json()["status"] == "pending_approval"
    autofix = await client.post(
        "/api/pr", json={"repo": "acme/api", "branch": "dev"}, headers=keys.of("developer")
    )
    assert autofix.json()["action"] == "open_autofix_pr"


async def test_generate_proposes_an_autofix_and_is_rate_limited_per_principal(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    body: dict[str, Any] = {"repo": "acme/api", "log": "E501 line too long"}
    first = await client.post("/api/generate", json=body, headers=keys.of("developer"))
    assert first.status_code == 201, first.text
    assert first.json()["params"]["log_excerpt"] == "E501 line too long"
    assert first.json()["provenance"] == {"via": "/api/generate"}
    limit = int(first.headers["x-ratelimit-limit"])
    for _ in range(limit - 1):
        ok = await client.post("/api/generate", json=body, headers=keys.of("developer"))
        assert ok.status_code == 201
    refused = await client.post("/api/generate", json=body, headers=keys.of("developer"))
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # Another principal has its own allowance.
    other = await client.post("/api/generate", json=body, headers=keys.of("developer2"))
    assert other.status_code == 201


async def test_legacy_action_routes_need_a_developer(client: httpx.AsyncClient, keys: Keys) -> None:
    for path in ("/api/generate", "/api/pr", "/api/create-autofix-pr"):
        response = await client.post(path, json=GOOD, headers=keys.of("viewer"))
        assert response.status_code == 403
        assert response.json()["code"] == "role_insufficient"
