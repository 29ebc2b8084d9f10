"""The GitLab autofix end to end: a decision from a GitLab incident clones a real git repository
(a bare repository as the remote), runs the real formatter (ruff), pushes
`dragon/fix-<incident>` and opens one draft merge request through a GitLab REST v4 stand-in on
127.0.0.1 (tests/integration/test_gitlab_jenkins_actions.py), reusing it on a retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from dragon.services.container import Services
from dragon.settings import Settings
from dragon.workers.runs import run_pass
from tests.api.test_decisions_api import runnable
from tests.conftest import FakeClock, Keys
from tests.integration.test_autofix_git import PRETTY, UGLY, git, seeded_remote
from tests.integration.test_gitlab_jenkins_actions import GITLAB_TOKEN, Vendor, vendor
from tests.integration.test_runs import changed, run_of

__all__ = ["vendor"]
PROJECT = "acme/platform/api"
MRS = "/api/v4/projects/acme%2Fplatform%2Fapi/merge_requests"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """acme/platform/api with a badly formatted module and a README."""
    return seeded_remote(
        tmp_path, PROJECT, {"app.py": UGLY, "README.md": "# api\n\nnot   python\n"}
    )


@pytest.fixture
def settings(settings: Settings, vendor: tuple[Vendor, str], remote: Path) -> Settings:
    _, url = vendor
    return changed(
        settings,
        gitlab_token=GITLAB_TOKEN,
        gitlab_api_url=url,
        gitlab_git_url=f"file://{remote}",
        autofix_fixers="acme/platform/*=ruff-format,*=ruff-fix",
        http_timeout_seconds=5.0,
    )


async def gitlab_autofix(client: httpx.AsyncClient, keys: Keys) -> tuple[str, dict[str, Any]]:
    made = await client.post(
        "/api/v1/incidents",
        json={
            "title": "lint failed on main",
            "severity": "SEV3",
            "source": "gitlab",
            "repo": PROJECT,
            "branch": "main",
        },
        headers=keys.of("developer"),
    )
    assert made.status_code == 201, made.text
    inc: str = made.json()["id"]
    decision = await runnable(
        client,
        keys,
        justification="the fix is mechanical",
        action="open_autofix_pr",
        title="format it",
        incident_id=inc,
        source="gitlab",
        repo=PROJECT,
        branch="main",
    )
    return inc, decision


async def test_a_gitlab_autofix_pushes_the_formatted_file_and_opens_a_draft_merge_request(
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    vendor: tuple[Vendor, str],
    remote: Path,
) -> None:
    state, _ = vendor
    inc, decision = await gitlab_autofix(client, keys)

    await run_pass(services)

    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    bare = remote / "acme" / "platform" / "api.git"
    branch = f"dragon/fix-{inc}"
    assert git("diff", "--name-only", "main", branch, cwd=bare).split() == ["app.py"]
    assert git("show", f"{branch}:app.py", cwd=bare) == PRETTY
    assert git("rev-list", "--count", f"main..{branch}", cwd=bare).strip() == "1"
    (mr,) = state.merge_requests
    assert mr["source_branch"] == branch
    assert mr["target_branch"] == "main"
    assert mr["draft"] is True
    assert mr["title"] == f"Draft: Dragon autofix for {inc}"
    assert f"/api/v1/incidents/{inc}" in mr["description"]
    assert f"/api/v1/decisions/{decision['id']}" in mr["description"]
    assert "Approved by: approver" in mr["description"]
    assert "medium-risk-requires-approval" in mr["description"]
    assert run["result"]["merge_request_url"] == mr["web_url"]
    assert run["result"]["branch"] == branch
    # Looked for an open merge request from the branch first, as GitLab documents the query.
    assert state.calls[f"GET {MRS}"] == 1
    assert state.calls[f"POST {MRS}"] == 1


async def test_a_gitlab_autofix_retried_after_a_502_reuses_the_branch_and_opens_one_mr(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    vendor: tuple[Vendor, str],
    remote: Path,
    clock: FakeClock,
) -> None:
    state, _ = vendor
    inc, decision = await gitlab_autofix(client, keys)
    state.fail_call[f"POST {MRS}"] = [502]
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert (run["status"], run["error_code"]) == ("queued", "vendor_unavailable"), run
    clock.advance(seconds=30)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    bare = remote / "acme" / "platform" / "api.git"
    assert git("rev-list", "--count", f"main..dragon/fix-{inc}", cwd=bare).strip() == "1"
    assert ("push", "reused") in [(s["step"], s["status"]) for s in run["log"]]
    assert len(state.merge_requests) == 1
    assert state.calls[f"POST {MRS}"] == 2


async def test_a_gitlab_autofix_that_finds_its_merge_request_open_does_not_push_again(
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    vendor: tuple[Vendor, str],
    remote: Path,
) -> None:
    state, _ = vendor
    inc, decision = await gitlab_autofix(client, keys)
    # An attempt that died after GitLab created the merge request, before Dragon recorded it.
    state.merge_requests.append(
        {
            "iid": 9,
            "source_branch": f"dragon/fix-{inc}",
            "state": "opened",
            "web_url": "https://gitlab.example.com/acme/platform/api/-/merge_requests/9",
        }
    )
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    assert run["result"]["reused"] is True
    assert run["result"]["iid"] == 9
    assert state.calls[f"POST {MRS}"] == 0
    bare = remote / "acme" / "platform" / "api.git"
    assert git("branch", "--list", "dragon/*", cwd=bare).strip() == ""
