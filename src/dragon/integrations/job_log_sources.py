"""Builds triage's JobLogSource from configuration: one fetcher, HTTP client and breaker for
each vendor whose credentials (or, for Jenkins, base URL) are configured."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from dragon.domain.breaker import BreakerRegistry, CircuitBreaker
from dragon.integrations import github_logs, gitlab_logs, jenkins_logs
from dragon.integrations.job_logs import JobLogs, TailLimits, VendorLogFetcher
from dragon.traces import traced


@dataclass(frozen=True, kw_only=True)
class LogSourceConfig:
    limits: TailLimits
    github_api_url: str = "https://api.github.com"
    github_token: str | None = None
    gitlab_url: str = "https://gitlab.com"
    gitlab_token: str | None = None
    jenkins_url: str | None = None
    jenkins_user: str | None = None
    jenkins_token: str | None = None


def build_job_logs(
    config: LogSourceConfig, breakers: BreakerRegistry
) -> tuple[JobLogs | None, list[httpx.AsyncClient]]:
    """The job log source (None when no vendor is configured) and the clients to close."""
    limits = config.limits
    fetchers: dict[str, tuple[VendorLogFetcher, CircuitBreaker]] = {}
    clients: list[httpx.AsyncClient] = []

    def client() -> httpx.AsyncClient:
        made = httpx.AsyncClient(
            timeout=httpx.Timeout(limits.timeout, connect=min(5.0, limits.timeout)),
            follow_redirects=True,
            max_redirects=3,
            transport=traced(),
        )
        clients.append(made)
        return made

    if config.github_token:
        fetchers[github_logs.SOURCE] = (
            github_logs.GithubJobLogs(
                client(), api_url=config.github_api_url, token=config.github_token, limits=limits
            ),
            breakers.breaker("github_logs"),
        )
    if config.gitlab_token:
        fetchers[gitlab_logs.SOURCE] = (
            gitlab_logs.GitlabJobLogs(
                client(), base_url=config.gitlab_url, token=config.gitlab_token, limits=limits
            ),
            breakers.breaker("gitlab_logs"),
        )
    if config.jenkins_url:
        fetchers[jenkins_logs.SOURCE] = (
            jenkins_logs.JenkinsJobLogs(
                client(),
                base_url=config.jenkins_url,
                user=config.jenkins_user,
                token=config.jenkins_token,
                limits=limits,
            ),
            breakers.breaker("jenkins_logs"),
        )
    return (JobLogs(fetchers) if fetchers else None), clients
