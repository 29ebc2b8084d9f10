"""GitHub Actions job logs for triage: `GET /repos/{repo}/actions/jobs/{job_id}/logs` (a
redirect to the log file, followed without the token: httpx drops Authorization on a
cross-origin redirect), or for a workflow run its first failed job from
`GET /repos/{repo}/actions/runs/{run_id}/jobs?filter=latest`."""

from __future__ import annotations

import re

import httpx

from dragon.domain.entities import Signal
from dragon.integrations.job_logs import TailLimits, read_json, read_tail

SOURCE = "github"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_ID = re.compile(r"^\d{1,20}$")


class GithubJobLogs:
    def __init__(
        self, client: httpx.AsyncClient, *, api_url: str, token: str, limits: TailLimits
    ) -> None:
        self._client = client
        self._api = api_url.rstrip("/")
        self._headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self._limits = limits

    async def fetch(self, signal: Signal) -> str | None:
        repo = signal.repo or ""
        if not _REPO.match(repo):
            return None
        job_id = signal.labels.get("job_id", "")
        if not _ID.match(job_id):
            run_id = signal.labels.get("run_id", "")
            if not _ID.match(run_id):
                return None
            found = await self._failed_job(repo, run_id)
            if found is None:
                return None
            job_id = found
        url = f"{self._api}/repos/{repo}/actions/jobs/{job_id}/logs"
        return await read_tail(self._client, url, limits=self._limits, headers=self._headers)

    async def _failed_job(self, repo: str, run_id: str) -> str | None:
        url = f"{self._api}/repos/{repo}/actions/runs/{run_id}/jobs"
        listing = await read_json(
            self._client,
            url,
            limits=self._limits,
            headers=self._headers,
            params={"filter": "latest", "per_page": "100"},
        )
        jobs = listing.get("jobs", []) if isinstance(listing, dict) else []
        for job in jobs if isinstance(jobs, list) else []:
            if isinstance(job, dict) and job.get("conclusion") in ("failure", "timed_out"):
                return str(job.get("id")) if _ID.match(str(job.get("id"))) else None
        return None
