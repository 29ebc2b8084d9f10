"""GitLab job traces for triage: `GET /api/v4/projects/{id}/jobs/{job_id}/trace`, or for a
pipeline its first failed job from `GET /api/v4/projects/{id}/pipelines/{id}/jobs`."""

from __future__ import annotations

import re

import httpx

from dragon.domain.entities import Signal
from dragon.integrations.job_logs import TailLimits, read_json, read_tail

SOURCE = "gitlab"
_ID = re.compile(r"^\d{1,20}$")


class GitlabJobLogs:
    def __init__(
        self, client: httpx.AsyncClient, *, base_url: str, token: str, limits: TailLimits
    ) -> None:
        self._client = client
        self._api = base_url.rstrip("/") + "/api/v4"
        self._headers = {"PRIVATE-TOKEN": token}
        self._limits = limits

    async def fetch(self, signal: Signal) -> str | None:
        project = signal.labels.get("project_id", "")
        if not _ID.match(project):
            return None
        job_id = signal.labels.get("job_id", "")
        if not _ID.match(job_id):
            pipeline = signal.labels.get("pipeline_id", "")
            if not _ID.match(pipeline):
                return None
            found = await self._failed_job(project, pipeline)
            if found is None:
                return None
            job_id = found
        url = f"{self._api}/projects/{project}/jobs/{job_id}/trace"
        return await read_tail(self._client, url, limits=self._limits, headers=self._headers)

    async def _failed_job(self, project: str, pipeline: str) -> str | None:
        url = f"{self._api}/projects/{project}/pipelines/{pipeline}/jobs"
        jobs = await read_json(
            self._client,
            url,
            limits=self._limits,
            headers=self._headers,
            params={"scope[]": "failed", "per_page": "20"},
        )
        for job in jobs if isinstance(jobs, list) else []:
            if isinstance(job, dict) and _ID.match(str(job.get("id"))):
                return str(job["id"])
        return None
