"""GitHub webhooks: `X-Hub-Signature-256` verification, delivery keys, and the CI events
(workflow_run, workflow_job, check_suite, check_run) normalized into signals.

Only completed runs become signals: a failure (failure, timed_out, startup_failure) is a
CI_FAILURE and a success is a CI_RECOVERY with the same fingerprint; other conclusions and
every other event are ignored with a reason. Normalization reads only the `x-github-event`
header, which the inbox keeps with the delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dragon.domain.errors import Unauthenticated, ValidationFailed
from dragon.domain.signals import Normalized, NormalizeOptions, SignalDraft, SignalKind
from dragon.integrations.normalization import (
    Fields,
    bounded_key,
    ci_severity,
    ci_signal,
    labels,
)
from dragon.integrations.webhook_auth import signature_matches, usable_secrets

SOURCE: str = "github"

_FAILED = frozenset({"failure", "timed_out", "startup_failure"})
_PASSED = frozenset({"success"})
# Checks created by GitHub Actions also arrive as workflow_run / workflow_job events, which
# carry more; taking both would open two incidents for one failure.
_ACTIONS_APP = "github-actions"


def authenticate(*, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> None:
    """Accept only a body whose `X-Hub-Signature-256` is the HMAC-SHA256 of the raw body under
    one of the configured secrets. `X-Hub-Signature` (SHA-1) alone is not enough."""
    keys = usable_secrets(secrets, source=SOURCE)
    if not signature_matches(headers.get("x-hub-signature-256"), body=body, secrets=keys):
        raise Unauthenticated(
            "X-Hub-Signature-256 is missing, malformed or does not match the body",
            code="signature_invalid",
        )


def delivery_key(*, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
    """GitHub's delivery GUID; a redelivery from GitHub keeps it."""
    key = (headers.get("x-github-delivery") or "").strip()
    if not key:
        raise ValidationFailed(
            "the X-GitHub-Delivery header is missing", code="delivery_key_missing"
        )
    return bounded_key(key)


def classify(*, headers: Mapping[str, str], payload: Any) -> Normalized:
    """The event type, or why the delivery is ignored, from the event header and the action
    alone: what the accept path needs. Signals (and the checks of their fields) come from
    `normalize`, in the worker."""
    event = (headers.get("x-github-event") or "").strip()
    if not event:
        return Normalized(event_type="unknown", ignored="no X-GitHub-Event header")
    if event == "ping":
        return Normalized(event_type="ping", ignored="ping")
    if event not in _HANDLERS:
        return Normalized(event_type=event, ignored=f"{event} events are not handled")
    action = Fields.root(payload).text("action")
    if action != "completed":
        return Normalized(event_type=event, ignored=f"{event} action {action} is not handled")
    return Normalized(event_type=event)


def normalize(*, headers: Mapping[str, str], payload: Any, options: NormalizeOptions) -> Normalized:
    meaning = classify(headers=headers, payload=payload)
    if meaning.ignored:
        return meaning
    event = meaning.event_type
    return _HANDLERS[event](event, Fields.root(payload), options)


def _kind(conclusion: str | None) -> SignalKind | None:
    if conclusion in _FAILED:
        return SignalKind.CI_FAILURE
    if conclusion in _PASSED:
        return SignalKind.CI_RECOVERY
    return None


def _repository(body: Fields) -> tuple[str, str | None, str | None]:
    """Full name, default branch and web address of the event's repository."""
    repository = body.need_obj("repository")
    return (
        repository.need_text("full_name"),
        repository.text("default_branch"),
        repository.text("html_url"),
    )


def _ignored_conclusion(event: str, conclusion: str | None) -> Normalized:
    return Normalized(event_type=event, ignored=f"conclusion {conclusion} is not handled")


def _workflow_run(event: str, body: Fields, options: NormalizeOptions) -> Normalized:
    run = body.need_obj("workflow_run")
    conclusion = run.text("conclusion")
    kind = _kind(conclusion)
    if kind is None:
        return _ignored_conclusion(event, conclusion)
    repo, default_branch, _ = _repository(body)
    run_id = run.ident("id")
    attempt = run.integer("run_attempt") or 1
    workflow = body.obj("workflow")
    pipeline = run.text("name") or (workflow.text("name") if workflow else None) or "workflow"
    branch = run.text("head_branch")
    signal = ci_signal(
        source=SOURCE,
        kind=kind,
        signal_key=f"workflow_run:{run_id}:{attempt}:{conclusion}",
        occurred_at=run.need_time("updated_at"),
        severity=ci_severity(
            branch=branch, default_branch=default_branch, default=options.default_severity_ci
        ),
        repo=repo,
        branch=branch,
        commit_sha=run.text("head_sha"),
        pipeline=pipeline,
        job=None,
        url=run.text("html_url"),
        labels=labels(
            event=event,
            conclusion=conclusion,
            run_id=run_id,
            run_attempt=str(attempt),
            workflow_id=run.optional_ident("workflow_id"),
        ),
    )
    return _one(event, signal)


def _workflow_job(event: str, body: Fields, options: NormalizeOptions) -> Normalized:
    job = body.need_obj("workflow_job")
    conclusion = job.text("conclusion")
    kind = _kind(conclusion)
    if kind is None:
        return _ignored_conclusion(event, conclusion)
    repo, default_branch, _ = _repository(body)
    job_id = job.ident("id")
    attempt = job.integer("run_attempt") or 1
    branch = job.text("head_branch")
    signal = ci_signal(
        source=SOURCE,
        kind=kind,
        signal_key=f"workflow_job:{job_id}:{attempt}:{conclusion}",
        occurred_at=job.need_time("completed_at"),
        severity=ci_severity(
            branch=branch, default_branch=default_branch, default=options.default_severity_ci
        ),
        repo=repo,
        branch=branch,
        commit_sha=job.text("head_sha"),
        pipeline=job.text("workflow_name"),
        job=job.need_text("name"),
        url=job.text("html_url"),
        labels=labels(
            event=event,
            conclusion=conclusion,
            job_id=job_id,
            run_id=job.optional_ident("run_id"),
            run_attempt=str(attempt),
            failed_step=_failed_step(job) if kind is SignalKind.CI_FAILURE else None,
        ),
    )
    return _one(event, signal)


def _check_suite(event: str, body: Fields, options: NormalizeOptions) -> Normalized:
    suite = body.need_obj("check_suite")
    app = suite.obj("app")
    if app is not None and app.text("slug") == _ACTIONS_APP:
        return Normalized(event_type=event, ignored="GitHub Actions suites come as workflow_run")
    conclusion = suite.text("conclusion")
    kind = _kind(conclusion)
    if kind is None:
        return _ignored_conclusion(event, conclusion)
    repo, default_branch, repo_url = _repository(body)
    suite_id = suite.ident("id")
    updated_at = suite.need_text("updated_at")
    branch = suite.text("head_branch")
    head_sha = suite.text("head_sha")
    url = None
    if repo_url and head_sha:
        url = f"{repo_url}/commit/{head_sha}/checks?check_suite_id={suite_id}"
    signal = ci_signal(
        source=SOURCE,
        kind=kind,
        # A re-requested suite keeps its id; its next completion is a new signal.
        signal_key=f"check_suite:{suite_id}:{conclusion}:{updated_at}",
        occurred_at=suite.need_time("updated_at"),
        severity=ci_severity(
            branch=branch, default_branch=default_branch, default=options.default_severity_ci
        ),
        repo=repo,
        branch=branch,
        commit_sha=head_sha,
        pipeline=(app.text("name") if app else None) or "check suite",
        job=None,
        url=url,
        labels=labels(event=event, conclusion=conclusion, check_suite_id=suite_id),
    )
    return _one(event, signal)


def _check_run(event: str, body: Fields, options: NormalizeOptions) -> Normalized:
    check = body.need_obj("check_run")
    app = check.obj("app")
    if app is not None and app.text("slug") == _ACTIONS_APP:
        return Normalized(event_type=event, ignored="GitHub Actions checks come as workflow_job")
    conclusion = check.text("conclusion")
    kind = _kind(conclusion)
    if kind is None:
        return _ignored_conclusion(event, conclusion)
    repo, default_branch, _ = _repository(body)
    check_id = check.ident("id")
    suite = check.obj("check_suite")
    branch = suite.text("head_branch") if suite else None
    output = check.obj("output")
    signal = ci_signal(
        source=SOURCE,
        kind=kind,
        signal_key=f"check_run:{check_id}:{conclusion}",
        occurred_at=check.need_time("completed_at"),
        severity=ci_severity(
            branch=branch, default_branch=default_branch, default=options.default_severity_ci
        ),
        repo=repo,
        branch=branch,
        commit_sha=check.text("head_sha"),
        pipeline=check.need_text("name"),
        job=None,
        url=check.text("html_url") or check.text("details_url"),
        labels=labels(event=event, conclusion=conclusion, check_run_id=check_id),
        log_excerpt=_check_output(output) if output else "",
    )
    return _one(event, signal)


_Handler = Callable[[str, Fields, NormalizeOptions], Normalized]
_HANDLERS: dict[str, _Handler] = {
    "workflow_run": _workflow_run,
    "workflow_job": _workflow_job,
    "check_suite": _check_suite,
    "check_run": _check_run,
}


def _one(event: str, signal: SignalDraft) -> Normalized:
    return Normalized(event_type=event, signals=(signal,))


def _failed_step(job: Fields) -> str | None:
    """The first failed step's name; steps are a convenience, so odd entries are skipped."""
    for step in job.array("steps"):
        if isinstance(step, Mapping) and step.get("conclusion") == "failure":
            name = step.get("name")
            return name if isinstance(name, str) else None
    return None


def _check_output(output: Fields) -> str:
    parts = [output.raw(key) for key in ("title", "summary", "text")]
    return "\n\n".join(part for part in parts if isinstance(part, str) and part)
