"""Dragon's GitLab actions: retry a pipeline or a job, autofix merge request (the same git
flow as GitHub's autofix, then a draft merge request), comment on a merge request or a commit.
Each looks for what an earlier attempt left (an open merge request from the branch, a note
carrying the run's idempotency key, a checkpoint) before acting, so it never acts twice."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dragon.domain.execution import ActionFailed, ActionRequest, StepLog
from dragon.integrations.autofix import (
    Autofix,
    Fixers,
    change_body,
    marker,
    plan_autofix,
    push_fix,
)
from dragon.integrations.git_workspace import GitRemote, checked_branch
from dragon.integrations.gitlab_api import GitLabClient, positive_param

_FINISHED_BADLY = frozenset({"failed", "canceled"})
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
# GitLab marks a merge request as a draft by this title prefix (docs: merge_requests/drafts).
DRAFT = "Draft: "
# The basic-auth user GitLab takes a personal, project or OAuth access token as over HTTPS.
GIT_USER = "oauth2"


@dataclass(frozen=True)
class GitLabSettings:
    git_url: str = "https://gitlab.com"
    fixers: Fixers = (("*", ("ruff-format",)),)


def _project_path(request: ActionRequest) -> str:
    """`group/sub/project`: git needs the path (a numeric project id names no clone URL)."""
    project = str(request.params.get("project") or request.repo or "")
    parts = project.split("/")
    if len(parts) < 2 or not all(parts) or {".", ".."} & set(parts):
        raise ActionFailed(
            f"a GitLab autofix needs the project path group/name, got {project!r}",
            code="action_params_invalid",
        )
    return project


class GitLabActions:
    def __init__(
        self, client: GitLabClient, *, token: str, settings: GitLabSettings | None = None
    ) -> None:
        self._client = client
        self._token = token
        self._settings = settings or GitLabSettings()

    async def retry(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        """Retry a job (`params.job_id`) or a pipeline's failed jobs (`params.pipeline_id`)."""
        project = str(
            request.params.get("project") or request.params.get("project_id") or request.repo or ""
        )
        job_id = positive_param(request, "job_id")
        pipeline_id = positive_param(request, "pipeline_id")
        if job_id is not None:
            retried = request.checkpoint.get("retried_job")
            if isinstance(retried, int):
                log.step("retry", "reused", detail=f"job {job_id} was retried as {retried}")
                return {"job_id": retried, "reused": True}
            if request.checkpoint.get("retrying_job") == job_id:
                # The call went out and its answer was lost: retrying again could run it twice.
                raise ActionFailed(
                    f"job {job_id} may have been retried by an attempt that died; not retrying it "
                    "a second time",
                    code="action_outcome_unknown",
                )
            await log.checkpoint(retrying_job=job_id)
            made = await self._client.retry_job(project, job_id)
            await log.checkpoint(retried_job=made.get("id"))
            log.step("retry", "ok", detail=f"job {job_id} retried as {made.get('id')}")
            return {"job_id": made.get("id"), "url": str(made.get("web_url") or "")}
        if pipeline_id is None:
            raise ActionFailed(
                "a GitLab retry needs params.pipeline_id or params.job_id",
                code="action_params_invalid",
            )
        current = await self._client.pipeline(project, pipeline_id)
        if request.checkpoint.get("retried_pipeline") == pipeline_id and (
            current.get("status") not in _FINISHED_BADLY
        ):
            log.step("retry", "reused", detail=f"pipeline {pipeline_id} is {current.get('status')}")
            return {"pipeline_id": pipeline_id, "reused": True}
        await log.checkpoint(retried_pipeline=pipeline_id)
        made = await self._client.retry_pipeline(project, pipeline_id)
        log.step("retry", "ok", detail=f"pipeline {pipeline_id} is {made.get('status')}")
        return {"pipeline_id": pipeline_id, "url": str(made.get("web_url") or "")}

    # ---- merge requests ------------------------------------------------------------------

    async def _merge_request(
        self,
        request: ActionRequest,
        log: StepLog,
        *,
        project: str,
        source: str,
        target: str,
        title: str,
        summary: str,
        push: Autofix | None = None,
    ) -> dict[str, Any]:
        """The open merge request from `source`, or a new draft one (after pushing `push`)."""
        existing = await self._client.open_merge_requests_from(project, source_branch=source)
        if existing:
            url = existing[0].get("web_url")
            log.step("merge_request", "reused", detail=f"{url} is open")
            return {
                "merge_request_url": url,
                "iid": existing[0].get("iid"),
                "branch": source,
                "reused": True,
            }
        if push is not None:
            remote = GitRemote(
                url=f"{self._settings.git_url.rstrip('/')}/{push.repo}.git",
                token=self._token,
                user=GIT_USER,
            )
            await push_fix(push, remote, decision_id=request.decision_id, log=log)
        await log.fence()
        made = await self._client.create_merge_request(
            project,
            source=source,
            target=target,
            title=f"{DRAFT}{title}",
            description=change_body(request, summary),
        )
        url = made.get("web_url")
        log.step("merge_request", "ok", detail=f"opened {url}", iid=made.get("iid"))
        return {"merge_request_url": url, "iid": made.get("iid"), "branch": source}

    async def autofix_merge_request(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        """Clone, run the repository's fixers, push `dragon/fix-<incident>`, open a draft
        merge request whose description links the incident, decision, approvers and rule."""
        fix = plan_autofix(request, repo=_project_path(request), rules=self._settings.fixers)
        return await self._merge_request(
            request,
            log,
            project=fix.repo,
            source=fix.branch,
            target=fix.base,
            title=f"Dragon autofix for {fix.target}",
            summary=f"Dragon ran `{'+'.join(fix.fixers)}` and opened this draft to fix "
            f"{fix.target}.",
            push=fix,
        )

    async def open_merge_request(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        """A draft merge request from a branch that exists already (`params.source_branch`)."""
        project = str(request.params.get("project") or request.repo or "")
        source = request.params.get("source_branch")
        if not isinstance(source, str) or not source:
            raise ActionFailed(
                "a merge request needs params.source_branch", code="action_params_invalid"
            )
        target = checked_branch(
            str(request.params.get("target_branch") or request.branch or "main")
        )
        return await self._merge_request(
            request,
            log,
            project=project,
            source=checked_branch(source),
            target=target,
            title=str(request.params.get("title") or f"Dragon: {request.decision_id}"),
            summary=f"Dragon opened this draft from {source}.",
        )

    # ---- comment ---------------------------------------------------------------------------

    async def comment(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        """A note on a merge request (`params.merge_request_iid`) or a commit
        (`params.commit_sha`), once: the note carries the run's key."""
        project = str(request.params.get("project") or request.repo or "")
        iid = positive_param(request, "merge_request_iid")
        sha = request.params.get("commit_sha")
        text = request.params.get("body")
        if not isinstance(text, str) or not text.strip():
            raise ActionFailed("a GitLab comment needs params.body", code="action_params_invalid")
        body = f"{text.strip()}\n\n{marker(request)}"
        if iid is not None:
            notes = await self._client.notes(project, iid)
            texts = [str(n.get("body", "")) for n in notes]
        elif isinstance(sha, str) and _SHA.fullmatch(sha):
            notes = await self._client.commit_comments(project, sha)
            texts = [str(n.get("note", "")) for n in notes]
        else:
            raise ActionFailed(
                "a GitLab comment needs params.merge_request_iid or params.commit_sha",
                code="action_params_invalid",
            )
        for note, said in zip(notes, texts, strict=True):
            if marker(request) in said:
                log.step("comment", "reused", detail="an earlier attempt already commented")
                return {"note_id": note.get("id"), "reused": True}
        await log.fence()
        if iid is not None:
            made = await self._client.add_note(project, iid, body)
            log.step("comment", "ok", detail=f"note {made.get('id')} on !{iid}")
            return {"note_id": made.get("id")}
        await self._client.comment_on_commit(project, str(sha), body)
        log.step("comment", "ok", detail=f"commented on {str(sha)[:12]}")
        return {"commit_sha": sha}
