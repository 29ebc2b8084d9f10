"""GitLab's REST API (v4) as Dragon's actions use it: retry a pipeline or a job, open a merge
request, comment on one. Auth is a `PRIVATE-TOKEN`; projects are named by their URL-encoded
path (`group/sub/project`). Each action looks for what an earlier attempt left first."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from dragon.domain.execution import ActionFailed, ActionRequest, StepLog
from dragon.integrations.action_http import Breaker, send

VENDOR = "GitLab"
_FINISHED_BADLY = frozenset({"failed", "canceled"})


def _project(path: str | None) -> str:
    """A project's URL-encoded path, or its numeric id."""
    if path and path.isdigit():
        return path
    if not path or "/" not in path:
        raise ActionFailed(
            f"a GitLab project is group/name, got {path!r}", code="action_params_invalid"
        )
    return quote(path, safe="")


def _positive(request: ActionRequest, name: str) -> int | None:
    value = request.params.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class GitLabClient:
    def __init__(self, http: httpx.AsyncClient, *, token: str, breaker: Breaker) -> None:
        self._http = http
        self._token = token
        self._breaker = breaker

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await send(
            self._http,
            self._breaker,
            method,
            f"/api/v4{path}",
            vendor=VENDOR,
            headers={"PRIVATE-TOKEN": self._token},
            **kwargs,
        )
        return response.json() if response.content else None

    async def pipeline(self, project: str, pipeline_id: int) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(
            "GET", f"/projects/{_project(project)}/pipelines/{pipeline_id}"
        )
        return found

    async def retry_pipeline(self, project: str, pipeline_id: int) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST", f"/projects/{_project(project)}/pipelines/{pipeline_id}/retry"
        )
        return made

    async def job(self, project: str, job_id: int) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(
            "GET", f"/projects/{_project(project)}/jobs/{job_id}"
        )
        return found

    async def retry_job(self, project: str, job_id: int) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST", f"/projects/{_project(project)}/jobs/{job_id}/retry"
        )
        return made

    async def merge_requests_from(self, project: str, *, source_branch: str) -> list[Any]:
        found: list[Any] = await self._call(
            "GET",
            f"/projects/{_project(project)}/merge_requests",
            params={"source_branch": source_branch, "state": "all"},
        )
        return found

    async def open_merge_request(
        self, project: str, *, source: str, target: str, title: str, description: str
    ) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST",
            f"/projects/{_project(project)}/merge_requests",
            json={
                "source_branch": source,
                "target_branch": target,
                "title": title,
                "description": description,
            },
        )
        return made

    async def notes(self, project: str, iid: int) -> list[Any]:
        found: list[Any] = await self._call(
            "GET",
            f"/projects/{_project(project)}/merge_requests/{iid}/notes",
            params={"per_page": 100},
        )
        return found

    async def add_note(self, project: str, iid: int, body: str) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST", f"/projects/{_project(project)}/merge_requests/{iid}/notes", json={"body": body}
        )
        return made


class GitLabActions:
    def __init__(self, client: GitLabClient) -> None:
        self._client = client

    async def retry(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        """Retry a job (`params.job_id`) or a pipeline's failed jobs (`params.pipeline_id`)."""
        project = str(
            request.params.get("project") or request.params.get("project_id") or request.repo or ""
        )
        job_id, pipeline_id = _positive(request, "job_id"), _positive(request, "pipeline_id")
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

    async def open_merge_request(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        project = str(request.params.get("project") or request.repo or "")
        source = request.params.get("source_branch")
        target = request.params.get("target_branch") or request.branch or "main"
        if not isinstance(source, str) or not source:
            raise ActionFailed(
                "a merge request needs params.source_branch", code="action_params_invalid"
            )
        existing = await self._client.merge_requests_from(project, source_branch=source)
        if existing:
            log.step("merge_request", "reused", detail=str(existing[0].get("web_url")))
            return {"merge_request_url": existing[0].get("web_url"), "reused": True}
        made = await self._client.open_merge_request(
            project,
            source=source,
            target=str(target),
            title=str(request.params.get("title") or f"Dragon: {request.decision_id}"),
            description=f"Decision: {request.links.get('decision', '')}\n\n"
            f"<!-- dragon:{request.idempotency_key} -->",
        )
        log.step("merge_request", "ok", detail=str(made.get("web_url")))
        return {"merge_request_url": made.get("web_url"), "iid": made.get("iid")}

    async def comment(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        project = str(request.params.get("project") or request.repo or "")
        iid = _positive(request, "merge_request_iid")
        text = request.params.get("body")
        if iid is None or not isinstance(text, str) or not text.strip():
            raise ActionFailed(
                "a GitLab comment needs params.merge_request_iid and body",
                code="action_params_invalid",
            )
        mark = f"<!-- dragon:{request.idempotency_key} -->"
        for note in await self._client.notes(project, iid):
            if mark in str(note.get("body", "")):
                log.step("comment", "reused", detail="an earlier attempt already commented")
                return {"note_id": note.get("id"), "reused": True}
        made = await self._client.add_note(project, iid, f"{text.strip()}\n\n{mark}")
        log.step("comment", "ok", detail=f"note {made.get('id')}")
        return {"note_id": made.get("id")}
