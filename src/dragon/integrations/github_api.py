"""GitHub's REST API as Dragon uses it: authentication and the calls its actions make.

Auth is a token (`DRAGON_GITHUB_TOKEN`) or a GitHub App: an RS256 app JWT (iss = app id,
valid for at most ten minutes) buys an installation access token, cached until shortly before
it expires. Every call goes through one shared AsyncClient and one circuit breaker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from dragon.domain.clock import Clock
from dragon.domain.execution import ActionFailed
from dragon.integrations.action_http import Breaker, send

VENDOR = "GitHub"
API_VERSION = "2022-11-28"
# Refresh an installation token this long before GitHub says it expires.
TOKEN_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class GitHubApp:
    app_id: str
    private_key: str
    installation_id: str


class GitHubAuth:
    """Answers the Authorization header to send; one instance per process."""

    def __init__(
        self, *, clock: Clock, token: str | None = None, app: GitHubApp | None = None
    ) -> None:
        if (token is None) == (app is None):
            raise ValueError("give either a token or a GitHub App")
        self._clock = clock
        self._token = token
        self._app = app
        self._cached: tuple[str, datetime] | None = None
        self._lock = asyncio.Lock()

    def app_jwt(self) -> str:
        assert self._app is not None
        now = self._clock()
        claims = {
            # Backdated a minute against clock drift, as GitHub recommends; ten minutes at most.
            "iat": int((now - timedelta(seconds=60)).timestamp()),
            "exp": int((now + timedelta(minutes=9)).timestamp()),
            "iss": self._app.app_id,
        }
        return jwt.encode(claims, self._app.private_key, algorithm="RS256")

    async def token(self, client: httpx.AsyncClient, breaker: Breaker) -> str:
        if self._token is not None:
            return self._token
        assert self._app is not None
        async with self._lock:
            now = self._clock()
            if self._cached is not None and self._cached[1] - TOKEN_MARGIN > now:
                return self._cached[0]
            response = await send(
                client,
                breaker,
                "POST",
                f"/app/installations/{quote(self._app.installation_id)}/access_tokens",
                vendor=VENDOR,
                headers={"Authorization": f"Bearer {self.app_jwt()}"},
            )
            body = response.json()
            token = body.get("token")
            if not isinstance(token, str) or not token:
                raise ActionFailed(
                    "GitHub returned no installation token", code="vendor_response_invalid"
                )
            expires = _parse_time(body.get("expires_at")) or now + timedelta(hours=1)
            self._cached = (token, expires)
            return token


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def split_repo(repo: str | None) -> tuple[str, str]:
    owner, _, name = (repo or "").partition("/")
    if not owner or not name or "/" in name:
        raise ActionFailed(
            f"a GitHub repository is owner/name, got {repo!r}", code="action_params_invalid"
        )
    return owner, name


class GitHubClient:
    """The REST calls Dragon's GitHub actions make; each returns GitHub's JSON."""

    def __init__(self, http: httpx.AsyncClient, *, auth: GitHubAuth, breaker: Breaker) -> None:
        self._http = http
        self._auth = auth
        self._breaker = breaker

    async def git_token(self) -> str:
        """The credential `git push` uses over HTTPS (as the x-access-token user)."""
        return await self._auth.token(self._http, self._breaker)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        token = await self._auth.token(self._http, self._breaker)
        response = await send(
            self._http,
            self._breaker,
            method,
            path,
            vendor=VENDOR,
            headers={
                "Authorization": f"Bearer {token}",
                # GitHub documents its vendor type; its OpenAPI description says application/json.
                "Accept": "application/vnd.github+json, application/json;q=0.9",
                "X-GitHub-Api-Version": API_VERSION,
            },
            **kwargs,
        )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def _repo(repo: str) -> str:
        owner, name = split_repo(repo)
        return f"/repos/{quote(owner)}/{quote(name)}"

    async def workflow_run(self, repo: str, run_id: int) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"{self._repo(repo)}/actions/runs/{run_id}")
        return found

    async def rerun_failed_jobs(self, repo: str, run_id: int) -> None:
        await self._call(
            "POST", f"{self._repo(repo)}/actions/runs/{run_id}/rerun-failed-jobs", json={}
        )

    async def issue_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._call(
            "GET", f"{self._repo(repo)}/issues/{number}/comments", params={"per_page": 100}
        )
        return found

    async def comment_on_issue(self, repo: str, number: int, body: str) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST", f"{self._repo(repo)}/issues/{number}/comments", json={"body": body}
        )
        return made

    async def commit_comments(self, repo: str, sha: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._call(
            "GET", f"{self._repo(repo)}/commits/{quote(sha)}/comments", params={"per_page": 100}
        )
        return found

    async def comment_on_commit(self, repo: str, sha: str, body: str) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST", f"{self._repo(repo)}/commits/{quote(sha)}/comments", json={"body": body}
        )
        return made

    async def open_pulls_from(self, repo: str, *, head: str) -> list[dict[str, Any]]:
        """Open pull requests whose head is `owner:branch` (a closed one was turned down, or
        merged: it does not stand for a fix still on offer)."""
        found: list[dict[str, Any]] = await self._call(
            "GET", f"{self._repo(repo)}/pulls", params={"head": head, "state": "open"}
        )
        return found

    async def open_pull(
        self, repo: str, *, title: str, head: str, base: str, body: str, draft: bool
    ) -> dict[str, Any]:
        made: dict[str, Any] = await self._call(
            "POST",
            f"{self._repo(repo)}/pulls",
            json={"title": title, "head": head, "base": base, "body": body, "draft": draft},
        )
        return made
