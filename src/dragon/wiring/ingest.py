"""Part of app.py's wiring: the webhook receivers and the worker that processes deliveries."""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from dragon.domain.ports import WebhookAdapter
from dragon.domain.signals import NormalizeOptions
from dragon.integrations import alertmanager, events, github, gitlab, jenkins
from dragon.services.container import InboxSettings, Services
from dragon.settings import Settings, secret_list
from dragon.workers.deliveries import run_delivery_worker
from dragon.workers.jobs import job_app, run_job_worker

# Beyond a delivery job's own triage of a pass (a few hundred milliseconds under load).
TRIAGE_BACKSTOP = timedelta(seconds=10)


def inbox_settings(settings: Settings) -> InboxSettings:
    adapters: dict[str, WebhookAdapter] = {
        github.SOURCE: github,
        gitlab.SOURCE: gitlab,
        jenkins.SOURCE: jenkins,
        alertmanager.SOURCE: alertmanager,
    }
    grouping = tuple(g.strip() for g in settings.alert_grouping_labels.split(",") if g.strip())
    return InboxSettings(
        adapters=adapters,
        secrets={
            github.SOURCE: secret_list(settings.github_webhook_secret),
            gitlab.SOURCE: secret_list(settings.gitlab_webhook_token),
            jenkins.SOURCE: secret_list(settings.jenkins_webhook_secret),
            alertmanager.SOURCE: secret_list(settings.alertmanager_token),
        },
        event_normalizer=events.normalize_event,
        options=NormalizeOptions(alert_grouping_labels=grouping),
        max_attempts=settings.delivery_max_attempts,
    )


def delivery_worker(settings: Settings, services: Services) -> Coroutine[Any, Any, None]:
    """The worker loop for the configured job engine (docs/decisions/0011)."""
    if settings.uses_procrastinate():
        jobs = job_app(services, database_url=settings.database_url, triage=settings.triage_enabled)
        return run_job_worker(jobs, concurrency=settings.worker_concurrency)
    return run_delivery_worker(services, poll_seconds=settings.worker_poll_seconds)


def triage_backstop(settings: Settings, services: Services) -> timedelta:
    """How long an incident waits before the triage worker takes it: where the delivery
    jobs triage the incidents they open (procrastinate, an analyzer that calls out to
    nothing), the worker is their backstop (retries, a job that failed or died, incidents
    opened through the API), and would otherwise race them for every new incident."""
    if settings.uses_procrastinate() and not services.triage.calls_out:
        return TRIAGE_BACKSTOP
    return timedelta(0)
