"""Dragon's GitHub actions: rerun failed jobs, autofix pull request, revert pull request,
comment. Each looks for what an earlier attempt left (a branch, a pull request, a comment
carrying the run's idempotency key) before acting, so running it again never acts twice."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dragon.domain.execution import ActionFailed, ActionRequest, StepLog
from dragon.integrations.autofix import Fixers, change_body, marker, plan_autofix, push_fix
from dragon.integrations.git_workspace import GitRemote, checked_branch, workspace
from dragon.integrations.github_api import GitHubClient, split_repo

_RUN_URL = re.compile(r"/actions/runs/(\d+)")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


def _int_param(request: ActionRequest, *names: str) -> int | None:
    for name in names:
        value = request.params.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _repo(request: ActionRequest) -> str:
    repo = request.params.get("repo") or request.repo
    split_repo(repo)
    assert isinstance(repo, str)
    return repo


@dataclass(frozen=True)
class GitHubSettings:
    git_url: str = "https://github.com"
    fixers: Fixers = (("*", ("ruff-format",)),)


class GitHubActions:
    def __init__(self, client: GitHubClient, *, settings: GitHubSettings) -> None:
        self._client = client
        self._settings = settings

    # ---- rerun failed jobs ---------------------------------------------------------------

    async def rerun_failed_jobs(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        repo = _repo(request)
        run_id = _int_param(request, "workflow_run_id", "run_id")
        if run_id is None:
            found = _RUN_URL.search(str(request.params.get("url", "")))
            run_id = int(found[1]) if found else None
        if run_id is None:
            raise ActionFailed(
                "rerun needs params.workflow_run_id (or a GitHub Actions run url)",
                code="action_params_invalid",
            )
        current = await self._client.workflow_run(repo, run_id)
        attempt = int(current.get("run_attempt") or 1)
        before = request.checkpoint.get("rerun_from_attempt")
        if isinstance(before, int) and attempt > before:
            log.step("rerun", "reused", detail=f"attempt {attempt} was already started")
            return {"workflow_run_id": run_id, "run_attempt": attempt, "reused": True}
        await log.checkpoint(rerun_from_attempt=attempt)
        await self._client.rerun_failed_jobs(repo, run_id)
        log.step("rerun", "ok", detail=f"rerun of the failed jobs of run {run_id} requested")
        return {"workflow_run_id": run_id, "url": str(current.get("html_url") or "")}

    # ---- comment -------------------------------------------------------------------------

    async def comment(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        repo = _repo(request)
        text = request.params.get("body")
        if not isinstance(text, str) or not text.strip():
            raise ActionFailed("a comment needs params.body", code="action_params_invalid")
        body = f"{text.strip()}\n\n{marker(request)}"
        number = _int_param(request, "pull_number", "issue_number", "number")
        sha = request.params.get("commit_sha")
        if number is not None:
            existing = await self._client.issue_comments(repo, number)
        elif isinstance(sha, str) and _SHA.fullmatch(sha):
            existing = await self._client.commit_comments(repo, sha)
        else:
            raise ActionFailed(
                "a comment needs params.pull_number or params.commit_sha",
                code="action_params_invalid",
            )
        for comment in existing:
            if marker(request) in str(comment.get("body", "")):
                log.step("comment", "reused", detail="an earlier attempt already commented")
                return {"comment_url": str(comment.get("html_url") or ""), "reused": True}
        await log.fence()
        if number is not None:
            made = await self._client.comment_on_issue(repo, number, body)
        else:
            made = await self._client.comment_on_commit(repo, str(sha), body)
        log.step("comment", "ok", detail="commented")
        return {"comment_url": str(made.get("html_url") or "")}

    # ---- pull requests -------------------------------------------------------------------

    def _remote(self, repo: str, token: str) -> GitRemote:
        return GitRemote(url=f"{self._settings.git_url.rstrip('/')}/{repo}.git", token=token)

    async def _existing_pull(self, repo: str, branch: str) -> dict[str, Any] | None:
        owner, _ = split_repo(repo)
        pulls = await self._client.open_pulls_from(repo, head=f"{owner}:{branch}")
        return pulls[0] if pulls else None

    async def _open_pull(
        self,
        request: ActionRequest,
        log: StepLog,
        *,
        repo: str,
        branch: str,
        base: str,
        title: str,
        summary: str,
        draft: bool,
    ) -> dict[str, Any]:
        await log.fence()
        made = await self._client.open_pull(
            repo,
            title=title,
            head=branch,
            base=base,
            body=change_body(request, summary),
            draft=draft,
        )
        url = str(made.get("html_url") or "")
        log.step("pull_request", "ok", detail=f"opened {url}", number=made.get("number"))
        return {"pull_request_url": url, "pull_number": made.get("number"), "branch": branch}

    async def autofix_pull_request(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        fix = plan_autofix(request, repo=_repo(request), rules=self._settings.fixers)
        existing = await self._existing_pull(fix.repo, fix.branch)
        if existing is not None:
            log.step("pull_request", "reused", detail=f"{existing.get('html_url')} is open")
            url = existing.get("html_url")
            return {"pull_request_url": url, "branch": fix.branch, "reused": True}
        remote = self._remote(fix.repo, await self._client.git_token())
        await push_fix(fix, remote, decision_id=request.decision_id, log=log)
        return await self._open_pull(
            request,
            log,
            repo=fix.repo,
            branch=fix.branch,
            base=fix.base,
            title=f"Dragon autofix for {fix.target}",
            summary=f"Dragon ran `{'+'.join(fix.fixers)}` and opened this draft to fix "
            f"{fix.target}.",
            draft=True,
        )

    async def revert_pull_request(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        repo = _repo(request)
        sha = request.params.get("commit_sha") or request.params.get("commit")
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise ActionFailed("a revert needs params.commit_sha", code="action_params_invalid")
        base = checked_branch(str(request.params.get("branch") or request.branch or "main"))
        branch = f"dragon/revert-{sha[:12]}"
        existing = await self._existing_pull(repo, branch)
        if existing is not None:
            log.step("pull_request", "reused", detail=f"{existing.get('html_url')} is open")
            return {"pull_request_url": existing.get("html_url"), "branch": branch, "reused": True}
        async with workspace(self._remote(repo, await self._client.git_token())) as ws:
            await ws.clone(base, depth=None)
            if await ws.remote_has_branch(branch):
                log.step("push", "reused", detail=f"{branch} was pushed by an earlier attempt")
            else:
                await ws.revert(sha)
                await log.fence()
                await ws.push(branch)
                log.step("push", "ok", detail=f"{branch} reverts {sha[:12]}")
        return await self._open_pull(
            request,
            log,
            repo=repo,
            branch=branch,
            base=base,
            title=f"Revert {sha[:12]}",
            summary=f"Dragon opened this pull request to revert {sha}.",
            draft=False,
        )
