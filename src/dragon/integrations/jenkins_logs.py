"""Jenkins build logs for triage: `{build url}consoleText`, only for builds under the
configured Jenkins URL, so a webhook cannot send Dragon's credentials anywhere else."""

from __future__ import annotations

import httpx

from dragon.domain.entities import Signal
from dragon.integrations.job_logs import TailLimits, read_tail

SOURCE = "jenkins"


class JenkinsJobLogs:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        user: str | None,
        token: str | None,
        limits: TailLimits,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/") + "/"
        self._auth = httpx.BasicAuth(user, token) if user and token else None
        self._limits = limits

    async def fetch(self, signal: Signal) -> str | None:
        url = signal.url or ""
        if not url.startswith(self._base) or ".." in url or "?" in url or "#" in url:
            return None
        url = url if url.endswith("/") else url + "/"
        return await read_tail(
            self._client, url + "consoleText", limits=self._limits, auth=self._auth
        )
