"""The autofix and revert pull requests end to end: a real git repository (a bare repository as
the remote), the real formatter (ruff), and the GitHub stand-in for the pull request."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from dragon.services.container import Services
from dragon.settings import Settings
from dragon.workers.runs import run_pass
from tests.api.test_decisions_api import runnable
from tests.conftest import Keys
from tests.fake_github import FakeGitHub, Scripted
from tests.integration.test_runs import changed, run_of

REPO = "acme/api"
UGLY = "def  greet( name ):\n    return 'hello '+name\n"
PRETTY = 'def greet(name):\n    return "hello " + name\n'
ALREADY_FINE = 'VALUE = {"a": 1}\n'


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],  # noqa: S607
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def seeded_remote(tmp_path: Path, repo: str, files: dict[str, str]) -> Path:
    """remotes/<repo>.git under `tmp_path` with one commit on main holding `files`; returns
    the remotes folder."""
    root = tmp_path / "remotes"
    bare = root / f"{repo}.git"
    bare.mkdir(parents=True)
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    work = tmp_path / "work"
    git("clone", "--quiet", str(bare), str(work), cwd=tmp_path)
    git("checkout", "--quiet", "-b", "main", cwd=work)
    for name, text in files.items():
        (work / name).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "initial", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    return root


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """acme/api with a badly formatted module, a well formatted one and a README."""
    return seeded_remote(
        tmp_path,
        "acme/api",
        {"app.py": UGLY, "fine.py": ALREADY_FINE, "README.md": "# api\n\nnot   python\n"},
    )


@pytest.fixture
def settings(settings: Settings, github: FakeGitHub, remote: Path) -> Settings:
    return changed(
        settings,
        github_token=github.state.token,
        github_api_url=github.url,
        github_git_url=f"file://{remote}",
        autofix_fixers="acme/*=ruff-format,*=ruff-fix",
    )


async def incident(client: httpx.AsyncClient, keys: Keys) -> str:
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "lint failed on main", "severity": "SEV3", "repo": REPO, "branch": "main"},
        headers=keys.of("developer"),
    )
    incident_id: str = response.json()["id"]
    return incident_id


async def propose(
    client: httpx.AsyncClient, keys: Keys, *, action: str, params: dict[str, Any], inc: str
) -> dict[str, Any]:
    # On main the default policy wants one approval (medium risk).
    return await runnable(
        client,
        keys,
        justification="the fix is mechanical",
        action=action,
        title=action,
        incident_id=inc,
        params=params,
    )


async def test_autofix_pushes_a_branch_with_only_the_formatted_file_and_opens_a_draft(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, remote: Path
) -> None:
    inc = await incident(client, keys)
    decision = await propose(client, keys, action="open_autofix_pr", params={}, inc=inc)

    await run_pass(services)

    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    bare = remote / "acme" / "api.git"
    branch = f"dragon/fix-{inc}"
    assert git("diff", "--name-only", "main", branch, cwd=bare).split() == ["app.py"]
    assert git("show", f"{branch}:app.py", cwd=bare) == PRETTY
    assert git("rev-list", "--count", f"main..{branch}", cwd=bare).strip() == "1"
    (pull,) = github.state.pulls[REPO]
    assert pull["draft"] is True
    assert pull["head"]["ref"] == branch
    assert pull["base"]["ref"] == "main"
    assert f"/api/v1/incidents/{inc}" in pull["body"]
    assert f"/api/v1/decisions/{decision['id']}" in pull["body"]
    assert "medium-risk-requires-approval" in pull["body"]
    assert "Approved by: approver" in pull["body"]
    assert run["result"]["pull_request_url"] == pull["html_url"]
    assert run["result"]["branch"] == branch


async def test_autofix_retried_after_the_push_reuses_the_branch_and_opens_one_pull_request(  # noqa: PLR0917
    client: httpx.AsyncClient,
    keys: Keys,
    services: Services,
    github: FakeGitHub,
    remote: Path,
    clock: Any,
) -> None:
    github.state.script[rf"POST /repos/{REPO}/pulls"] = [Scripted(502, {"message": "Bad Gateway"})]
    inc = await incident(client, keys)
    decision = await propose(client, keys, action="open_autofix_pr", params={}, inc=inc)
    await run_pass(services)
    assert (await run_of(client, keys, decision["id"]))["status"] == "queued"
    clock.advance(seconds=30)
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded"
    assert run["attempts"] == 2
    assert any(s["step"] == "push" and s["status"] == "reused" for s in run["log"])
    bare = remote / "acme" / "api.git"
    assert git("rev-list", "--count", f"main..dragon/fix-{inc}", cwd=bare).strip() == "1"
    assert len(github.state.pulls[REPO]) == 1


async def test_autofix_reuses_an_open_pull_request_but_not_one_a_person_closed(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    inc = await incident(client, keys)
    first = await propose(client, keys, action="open_autofix_pr", params={}, inc=inc)
    await run_pass(services)
    again = await propose(client, keys, action="open_autofix_pr", params={}, inc=inc)
    await run_pass(services)
    (opened,) = github.state.pulls[REPO]
    assert (await run_of(client, keys, again["id"]))["result"]["reused"] is True

    opened["state"] = "closed"  # turned down on GitHub
    later = await propose(client, keys, action="open_autofix_pr", params={}, inc=inc)
    await run_pass(services)

    run = await run_of(client, keys, later["id"])
    assert run["status"] == "succeeded", run
    assert [p["state"] for p in github.state.pulls[REPO]] == ["closed", "open"]
    assert run["result"]["pull_request_url"] == github.state.pulls[REPO][1]["html_url"]
    assert "reused" not in run["result"]
    assert (await run_of(client, keys, first["id"]))["result"]["pull_request_url"] == opened[
        "html_url"
    ]


async def test_autofix_that_changes_nothing_fails_without_pushing(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, remote: Path
) -> None:
    inc = await incident(client, keys)
    decision = await propose(
        client, keys, action="open_autofix_pr", params={"paths": ["fine.py"]}, inc=inc
    )
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "failed"
    assert run["error_code"] == "autofix_no_change"
    bare = remote / "acme" / "api.git"
    assert git("branch", "--list", "dragon/*", cwd=bare).strip() == ""
    assert github.state.count("POST", rf"/repos/{REPO}/pulls") == 0


async def test_autofix_refuses_a_path_outside_the_repository(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub
) -> None:
    inc = await incident(client, keys)
    decision = await propose(
        client, keys, action="open_autofix_pr", params={"paths": ["../../etc/passwd"]}, inc=inc
    )
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["error_code"] == "path_invalid"
    assert sum(github.state.calls.values()) == 0


async def test_revert_pull_request_reverts_the_commit_on_its_own_branch(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, remote: Path
) -> None:
    bare = remote / "acme" / "api.git"
    work = remote.parent / "work"
    (work / "fine.py").write_text('VALUE = {"a": 2}\n')
    git("commit", "--quiet", "-am", "break the value", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    bad = git("rev-parse", "HEAD", cwd=work).strip()
    inc = await incident(client, keys)
    decision = await propose(
        client, keys, action="open_revert_pr", params={"commit_sha": bad}, inc=inc
    )
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "succeeded", run
    branch = f"dragon/revert-{bad[:12]}"
    assert git("show", f"{branch}:fine.py", cwd=bare) == ALREADY_FINE
    assert git("diff", "--name-only", "main", branch, cwd=bare).split() == ["fine.py"]
    (pull,) = github.state.pulls[REPO]
    assert pull["draft"] is False
    assert "approver" in pull["body"]


async def test_autofix_refuses_a_branch_param_git_would_read_as_an_option(
    client: httpx.AsyncClient, keys: Keys, services: Services, github: FakeGitHub, tmp_path: Path
) -> None:
    owned = tmp_path / "owned"
    inc = await incident(client, keys)
    decision = await propose(
        client,
        keys,
        action="open_autofix_pr",
        params={"branch": f"--upload-pack=touch {owned}"},
        inc=inc,
    )
    await run_pass(services)
    run = await run_of(client, keys, decision["id"])
    assert run["status"] == "failed"
    assert run["error_code"] == "branch_invalid"
    assert "begins with '-'" in run["error"]
    assert not owned.exists()
    assert sum(github.state.calls.values()) == 0
