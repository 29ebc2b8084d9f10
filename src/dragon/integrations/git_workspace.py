"""A throw-away clone of a repository: fetch it with git, run a fixer, commit, push.

git runs as a subprocess without a shell, never prompts, reads no system or user config, and
gets its credential through the environment (GIT_CONFIG_*), so it never appears in argv, logs
or errors; fixers never get it. Branch names are checked against git's rules and refs and paths
follow `--` (or `--end-of-options`), so nothing from a decision reads as an option. Every
command has a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dragon.domain.execution import ActionFailed
from dragon.domain.git_refs import branch_problem

COMMAND_TIMEOUT = 120.0
MAX_OUTPUT = 2000
AUTHOR = ("Dragon", "dragon@users.noreply.github.com")

# The fixers Dragon knows, by name. A repository's configuration picks names from here; no
# command ever comes from a request. The fixer runs inside the cloned repository, so it must
# not run code the repository brings: ruff and black read only data from pyproject.toml;
# prettier would load `plugins` (and a prettier.config.js, which is code) from the repository's
# config, so it runs with --no-config and formats with prettier's defaults (docs/api.md).
FIXERS: dict[str, tuple[str, ...]] = {
    "ruff-format": ("ruff", "format", "--no-cache"),
    "ruff-fix": ("ruff", "check", "--fix", "--exit-zero", "--no-cache"),
    "prettier": ("prettier", "--write", "--no-config", "--no-editorconfig"),
    "black": ("black", "--quiet"),
}


def fixer_command(name: str) -> tuple[str, ...]:
    try:
        program, *args = FIXERS[name]
    except KeyError:
        raise ActionFailed(
            f"unknown fixer {name!r}; known: {', '.join(sorted(FIXERS))}", code="fixer_unknown"
        ) from None
    # This environment's own tools first (ruff ships with Dragon), then PATH.
    beside = Path(sys.executable).parent / program
    found = str(beside) if beside.exists() else shutil.which(program)
    if found is None:
        raise ActionFailed(f"fixer {name!r} needs {program!r}, not installed", code="fixer_missing")
    return (found, *args)


def safe_paths(paths: Sequence[str]) -> list[str]:
    """Relative paths inside the repository; anything else is refused."""
    checked = []
    for raw in paths:
        path = PurePosixPath(raw)
        if not raw or path.is_absolute() or ".." in path.parts or raw.startswith("-"):
            raise ActionFailed(f"path {raw!r} is not inside the repository", code="path_invalid")
        checked.append(str(path))
    return checked


def checked_branch(name: str) -> str:
    """`name` when git accepts it as a branch name; refused otherwise (never passed to git)."""
    problem = branch_problem(name)
    if problem is not None:
        raise ActionFailed(f"branch {name!r} {problem}", code="branch_invalid")
    return name


@dataclass(frozen=True)
class GitRemote:
    url: str
    token: str | None = None  # sent as HTTP basic auth
    # The basic-auth user git sends the token as: GitHub's x-access-token, GitLab's oauth2.
    user: str = "x-access-token"


class Workspace:
    def __init__(self, path: Path, remote: GitRemote) -> None:
        self.path = path
        self._remote = remote

    def _env(self, *, credentials: bool) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.path.parent),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
        }
        if credentials and self._remote.token:
            basic = base64.b64encode(f"{self._remote.user}:{self._remote.token}".encode()).decode()
            env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
        return env

    async def run(
        self, *args: str, cwd: Path | None = None, check: bool = True, credentials: bool = False
    ) -> str:
        process = await asyncio.create_subprocess_exec(
            *args,
            cwd=cwd or self.path,
            env=self._env(credentials=credentials),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ActionFailed(
                f"{Path(args[0]).name} {args[1] if len(args) > 1 else ''} timed out",
                code="git_timeout",
                retryable=True,
            ) from None
        text = output.decode(errors="replace")
        if self._remote.token:
            text = text.replace(self._remote.token, "***")
        if check and process.returncode != 0:
            raise ActionFailed(
                f"{Path(args[0]).name} {args[1] if len(args) > 1 else ''} failed: "
                f"{text.strip()[-MAX_OUTPUT:]}",
                code="git_failed",
            )
        return text

    async def git(self, *args: str, check: bool = True) -> str:
        name, email = AUTHOR
        return await self.run(
            "git",
            "-c",
            f"user.name={name}",
            "-c",
            f"user.email={email}",
            "-c",
            "commit.gpgsign=false",
            *args,
            check=check,
            credentials=True,
        )

    async def fix(self, name: str, paths: Sequence[str]) -> None:
        """Run the fixer `name` on `paths` (the whole repository when none), without the
        remote's credential."""
        await self.run(*fixer_command(name), "--", *(safe_paths(paths) or ["."]))

    async def clone(self, branch: str, *, depth: int | None = 50) -> None:
        shallow = ["--depth", str(depth)] if depth else []
        await self.run(
            "git",
            "clone",
            "--quiet",
            "--branch",
            checked_branch(branch),
            "--single-branch",
            *shallow,
            "--",
            self._remote.url,
            str(self.path),
            cwd=self.path.parent,
            credentials=True,
        )

    async def remote_has_branch(self, branch: str) -> bool:
        ref = f"refs/heads/{checked_branch(branch)}"
        out = await self.git("ls-remote", "--heads", "--", "origin", ref)
        return bool(out.strip())

    async def changed_files(self) -> list[str]:
        out = await self.git("diff", "--name-only")
        return [line for line in out.splitlines() if line]

    async def commit_all_tracked(self, message: str) -> str:
        await self.git("add", "--update")
        await self.git("commit", "--quiet", "-m", message)
        return (await self.git("rev-parse", "HEAD")).strip()

    async def push(self, branch: str) -> None:
        ref = f"HEAD:refs/heads/{checked_branch(branch)}"
        await self.git("push", "--quiet", "--", "origin", ref)

    async def revert(self, sha: str) -> None:
        """Revert the commit `sha` (a merge against its first parent) in one new commit."""
        rev = ("--end-of-options", sha)
        parents = (await self.git("rev-list", "--parents", "-n", "1", *rev, "--")).split()
        mainline = ["-m", "1"] if len(parents) > 2 else []
        await self.git("revert", "--no-edit", *mainline, *rev)


@contextlib.asynccontextmanager
async def workspace(remote: GitRemote) -> AsyncIterator[Workspace]:
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="dragon-git-"))
    try:
        yield Workspace(root / "repo", remote)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
