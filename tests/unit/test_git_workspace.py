"""The git workspace hands the remote's credential to git alone, as the forge's basic-auth
user, and never to a fixer; names git would read as options never reach it."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import pytest

from dragon.domain.execution import ActionFailed
from dragon.integrations.git_workspace import GitRemote, Workspace, checked_branch, safe_paths

TOKEN = "glpat-secret-token-0123456789"


async def test_git_gets_the_token_as_the_forges_user_and_a_fixer_never_does(
    tmp_path: Path,
) -> None:
    ws = Workspace(tmp_path, GitRemote(url="file:///nowhere", token=TOKEN, user="oauth2"))
    header = await ws.git("config", "--get", "http.extraHeader")
    expected = base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()
    assert header.strip() == f"Authorization: Basic {expected}"
    shown = await ws.run(sys.executable, "-c", "import os; print(sorted(os.environ))")
    assert "GIT_CONFIG_VALUE_0" not in shown
    assert TOKEN not in shown


@pytest.mark.parametrize("name", ["-b", "--upload-pack=x", "a..b", "x.lock", "a b"])
def test_a_branch_git_would_misread_is_refused_before_git_runs(name: str) -> None:
    with pytest.raises(ActionFailed) as refused:
        checked_branch(name)
    assert refused.value.code == "branch_invalid"


@pytest.mark.parametrize("path", ["-rf", "/etc/passwd", "../up", ""])
def test_a_path_outside_the_repository_or_like_an_option_is_refused(path: str) -> None:
    with pytest.raises(ActionFailed) as refused:
        safe_paths([path])
    assert refused.value.code == "path_invalid"


async def test_prettier_runs_without_the_repositorys_config_and_paths_after_a_double_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in `prettier` on PATH records how it was called and what it was given."""
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "prettier"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'env': sorted(os.environ)}, open('called.json', 'w'))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    repo = tmp_path / "repo"
    repo.mkdir()
    ws = Workspace(repo, GitRemote(url="file:///nowhere", token=TOKEN))
    await ws.fix("prettier", ["web/app.js"])
    called = json.loads((repo / "called.json").read_text())
    assert called["argv"] == ["--write", "--no-config", "--no-editorconfig", "--", "web/app.js"]
    assert "GIT_CONFIG_VALUE_0" not in called["env"]
