"""Every route that takes a branch refuses what git would not take as a branch name (a leading
`-` would reach a git command line as an option): 422 naming the field, nothing written."""

from __future__ import annotations

import httpx
import pytest

from dragon.domain.git_refs import branch_problem
from tests.conftest import Keys

REFUSED = [
    "-upload-pack=touch /tmp/owned",
    "--force",
    "main..evil",
    "main@{1}",
    "topic.lock",
    "topic/.hidden",
    "with space",
    "tab\there",
    "nul\x00",
    "del\x7f",
    "tilde~1",
    "caret^",
    "colon:x",
    "what?",
    "star*",
    "bracket[",
    "back\\slash",
    "@",
    "/leading",
    "trailing/",
    "double//slash",
    "dot.",
    "",
]
ACCEPTED = ["main", "release/2.4", "feature/x+y", "dragon/fix-inc_01", "user@topic", "v1.2.3"]


@pytest.mark.parametrize("name", REFUSED)
def test_git_refuses_it_and_so_does_dragon(name: str) -> None:
    assert branch_problem(name) is not None


@pytest.mark.parametrize("name", ACCEPTED)
def test_ordinary_branch_names_pass(name: str) -> None:
    assert branch_problem(name) is None


@pytest.mark.parametrize("name", REFUSED)
async def test_a_decision_with_a_bad_branch_is_422_naming_branch(
    client: httpx.AsyncClient, keys: Keys, name: str
) -> None:
    response = await client.post(
        "/api/v1/decisions",
        json={"action": "comment", "title": "t", "repo": "acme/api", "branch": name},
        headers=keys.of("developer"),
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert [e["field"] for e in problem["errors"]] == ["branch"]
    listed = await client.get("/api/v1/decisions", headers=keys.of("viewer"))
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/api/v1/incidents", {"title": "t", "repo": "acme/api"}),
        ("/api/create-autofix-pr", {"repo": "acme/api", "file_path": "app.py"}),
        ("/api/pr", {"repo": "acme/api"}),
    ],
)
async def test_other_routes_refuse_an_option_as_branch_and_say_why(
    client: httpx.AsyncClient, keys: Keys, route: str, body: dict[str, str]
) -> None:
    response = await client.post(
        route, json={**body, "branch": "--upload-pack=x"}, headers=keys.of("developer")
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "branch"
    assert "begins with '-'" in error["message"]


async def test_an_ordinary_branch_is_accepted(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/api/v1/decisions",
        json={"action": "comment", "title": "t", "repo": "acme/api", "branch": "release/2.4"},
        headers=keys.of("developer"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["branch"] == "release/2.4"
