"""GitLab's REST API (v4) as Dragon's actions use it: pipelines and jobs (retry), merge requests
(list by source branch, create), notes on merge requests and commits. Auth is a
`PRIVATE-TOKEN`; projects are named by their URL-encoded path (`group/sub/project`) or numeric
id. Field names follow GitLab's REST API documentation (docs.gitlab.com/api)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from dragon.domain.execution import ActionFailed, ActionRequest
from dragon.integrations.action_http import Breaker, send

VENDOR = "GitLab"


def project_ref(path: str | None) -> str:
    """A project's URL-encoded path, or its numeric id."""
    if path and path.isdigit():
        return path
    if not path or "/" not in path:
        raise ActionFailed(
            f"a GitLab project is group/name, got {path!r}", code="action_params_invalid"
        )
    return quote(path, safe="")


def positive_param(request: ActionRequest, name: str) -> int | None:
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
            "GET", f"/projects/{project_ref(project)}/pipelines/{pipeline_id}"
        )
        return found

    async def retry_pipeline(self, project: str, pipeline_id: int) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST", f"/projects/{project_ref(project)}/pipelines/{pipeline_id}/retry"
        )
        return made

    async def job(self, project: str, job_id: int) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(
            "GET", f"/projects/{project_ref(project)}/jobs/{job_id}"
        )
        return found

    async def retry_job(self, project: str, job_id: int) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST", f"/projects/{project_ref(project)}/jobs/{job_id}/retry"
        )
        return made

    async def open_merge_requests_from(self, project: str, *, source_branch: str) -> list[Any]:
        """The open merge requests whose source branch is `source_branch`."""
        found: list[Any] = await self._call(
            "GET",
            f"/projects/{project_ref(project)}/merge_requests",
            params={"source_branch": source_branch, "state": "opened"},
        )
        return found

    async def create_merge_request(
        self, project: str, *, source: str, target: str, title: str, description: str
    ) -> dict[str, Any]:
        """A title beginning `Draft:` makes it a draft: GitLab's create call has no draft flag."""
        made: dict[str, Any] = await self._call(
            "POST",
            f"/projects/{project_ref(project)}/merge_requests",
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
            f"/projects/{project_ref(project)}/merge_requests/{iid}/notes",
            params={"per_page": 100},
        )
        return found

    async def add_note(self, project: str, iid: int, body: str) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST",
            f"/projects/{project_ref(project)}/merge_requests/{iid}/notes",
            json={"body": body},
        )
        return made

    async def commit_comments(self, project: str, sha: str) -> list[Any]:
        found: list[Any] = await self._call(
            "GET",
            f"/projects/{project_ref(project)}/repository/commits/{quote(sha)}/comments",
            params={"per_page": 100},
        )
        return found

    async def comment_on_commit(self, project: str, sha: str, note: str) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST",
            f"/projects/{project_ref(project)}/repository/commits/{quote(sha)}/comments",
            json={"note": note},
        )
        return made
