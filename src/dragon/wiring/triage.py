"""Part of app.py's wiring: what triage analyses with — rules, an optional LLM, job logs."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from dragon.domain.breaker import BreakerRegistry
from dragon.integrations.job_log_sources import LogSourceConfig, build_job_logs
from dragon.integrations.job_logs import JobLogs, TailLimits
from dragon.integrations.llm import LlmAnalyzer, LlmSettings
from dragon.integrations.llm import build_client as build_llm_client
from dragon.services.triage import TriageSettings
from dragon.settings import Settings, runbook_map


def triage_settings(settings: Settings) -> TriageSettings:
    return TriageSettings(
        runbooks=runbook_map(settings.triage_runbooks),
        change_freeze=settings.change_freeze,
        max_attempts=settings.triage_max_attempts,
    )


def llm_analyzer(settings: Settings, breakers: BreakerRegistry) -> LlmAnalyzer | None:
    if not settings.llm_base_url:
        return None
    llm = LlmSettings(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        api_key_header=settings.llm_api_key_header,
        total_timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )
    return LlmAnalyzer(
        build_llm_client(llm, connect_timeout=settings.llm_connect_timeout_seconds),
        settings=llm,
        breaker=breakers.breaker(
            "llm",
            failure_threshold=settings.llm_breaker_threshold,
            reset_seconds=settings.llm_breaker_reset_seconds,
        ),
    )


def job_log_source(
    settings: Settings, breakers: BreakerRegistry
) -> tuple[JobLogs | None, list[httpx.AsyncClient]]:
    """The vendors whose job logs triage may fetch: those with credentials configured."""

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value else None

    config = LogSourceConfig(
        limits=TailLimits(
            max_bytes=settings.triage_log_max_bytes, timeout=settings.triage_log_timeout_seconds
        ),
        github_api_url=settings.triage_github_api_url,
        github_token=secret(settings.triage_github_token),
        gitlab_url=settings.triage_gitlab_url,
        gitlab_token=secret(settings.triage_gitlab_token),
        jenkins_url=settings.triage_jenkins_url,
        jenkins_user=settings.triage_jenkins_user,
        jenkins_token=secret(settings.triage_jenkins_token),
    )
    return build_job_logs(config, breakers)
