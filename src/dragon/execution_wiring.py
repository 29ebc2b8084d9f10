"""Part of app.py's wiring: the action handlers for the vendors configured in the settings,
each vendor with one shared HTTP client and one circuit breaker."""

from __future__ import annotations

from datetime import timedelta

import httpx

from dragon.domain.breaker import BreakerRegistry
from dragon.domain.clock import Clock
from dragon.domain.execution import ActionHandler, BySource
from dragon.integrations.action_http import default_timeout
from dragon.integrations.autofix import parse_fixers
from dragon.integrations.github_actions import GitHubActions, GitHubSettings
from dragon.integrations.github_api import GitHubApp, GitHubAuth, GitHubClient
from dragon.integrations.gitlab_actions import GitLabActions, GitLabSettings
from dragon.integrations.gitlab_api import GitLabClient
from dragon.integrations.http_step import HttpStep
from dragon.integrations.jenkins_api import JenkinsActions, JenkinsClient
from dragon.services.container import ExecutionWiring
from dragon.services.runs import ExecutionSettings
from dragon.settings import Settings
from dragon.traces import traced


def github_auth(settings: Settings, *, clock: Clock) -> GitHubAuth | None:
    if settings.github_token is not None:
        return GitHubAuth(clock=clock, token=settings.github_token.get_secret_value())
    app_id, key = settings.github_app_id, settings.github_app_private_key
    installation = settings.github_app_installation_id
    if app_id and key is not None and installation:
        app = GitHubApp(app_id, key.get_secret_value(), installation)
        return GitHubAuth(clock=clock, app=app)
    return None


def execution_wiring(
    settings: Settings, *, clock: Clock, breakers: BreakerRegistry
) -> ExecutionWiring:
    """A handler for each action Dragon can execute with the vendors configured here; one
    shared HTTP client and one circuit breaker per vendor."""
    # action -> source -> handler: a rerun of a GitLab pipeline goes to GitLab, and so on.
    by_source: dict[str, dict[str, ActionHandler]] = {}
    closers = []

    def client_for(base_url: str) -> httpx.AsyncClient:
        http = httpx.AsyncClient(
            base_url=base_url,
            timeout=default_timeout(settings.http_timeout_seconds),
            headers={"User-Agent": "dragon"},
            transport=traced(),
        )
        closers.append(http.aclose)
        return http

    def offer(source: str, handler: ActionHandler, *actions: str) -> None:
        for action in actions:
            by_source.setdefault(action, {})[source] = handler

    fixers = tuple(parse_fixers(settings.autofix_fixers))
    auth = github_auth(settings, clock=clock)
    if auth is not None:
        http = client_for(settings.github_api_url)
        client = GitHubClient(http, auth=auth, breaker=breakers.breaker("github"))
        gh = GitHubActions(
            client,
            settings=GitHubSettings(
                git_url=settings.github_git_url,
                fixers=fixers,
            ),
        )
        # Triage's catalog names, and the core catalog's, for the same actions.
        offer("github", gh.rerun_failed_jobs, "rerun_job", "rerun_failed_jobs")
        offer("github", gh.autofix_pull_request, "open_autofix_pr", "autofix_pull_request")
        offer("github", gh.revert_pull_request, "open_revert_pr", "revert_pull_request")
        offer("github", gh.comment, "comment")
    if settings.gitlab_token is not None:
        token = settings.gitlab_token.get_secret_value()
        gl = GitLabActions(
            GitLabClient(
                client_for(settings.gitlab_api_url),
                token=token,
                breaker=breakers.breaker("gitlab"),
            ),
            token=token,
            settings=GitLabSettings(
                git_url=settings.gitlab_git_url or settings.gitlab_api_url,
                fixers=fixers,
            ),
        )
        offer("gitlab", gl.retry, "rerun_job", "rerun_failed_jobs")
        offer("gitlab", gl.autofix_merge_request, "open_autofix_pr", "autofix_pull_request")
        offer("gitlab", gl.comment, "comment")
    if settings.jenkins_url and settings.jenkins_user and settings.jenkins_api_token:
        jenkins = JenkinsActions(
            JenkinsClient(
                client_for(settings.jenkins_url),
                user=settings.jenkins_user,
                token=settings.jenkins_api_token.get_secret_value(),
                breaker=breakers.breaker("jenkins"),
            )
        )
        offer("jenkins", jenkins.build, "rerun_job", "rerun_failed_jobs")
        offer("jenkins", jenkins.console, "read_console")
    handlers: dict[str, ActionHandler] = {
        action: BySource(vendors) for action, vendors in by_source.items()
    }
    runbook_http = httpx.AsyncClient(
        timeout=default_timeout(settings.http_timeout_seconds),
        headers={"User-Agent": "dragon"},
        transport=traced(),
    )
    closers.append(runbook_http.aclose)
    return ExecutionWiring(
        handlers=handlers,
        runbook_steps={"http_call": HttpStep(runbook_http, breakers=breakers)},
        settings=ExecutionSettings(
            lease_seconds=settings.run_lease_seconds,
            max_attempts=settings.run_max_attempts,
            public_url=settings.public_url,
            retention_count=settings.run_retention_count,
            retention_age=timedelta(days=settings.run_retention_days),
        ),
        actions_enabled=settings.actions_enabled,
        dry_run=settings.actions_dry_run,
        closers=closers,
    )
