"""GitHub webhooks: `X-Hub-Signature-256` verification, delivery keys, and the CI events
(workflow_run, workflow_job, check_suite, check_run) normalized into signals.

Only completed runs become signals: a failure (failure, timed_out, startup_failure) is a
CI_FAILURE and a success is a CI_RECOVERY with the same fingerprint; other conclusions and
every other event are ignored with a reason. Normalization reads only the `x-github-event`
header, which the inbox keeps with the delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dragon.domain.enums import Severity
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
_ACTIONS_COVERED = {
    "check_suite": "GitHub Actions suites come as workflow_run",
    "check_run": "GitHub Actions checks come as workflow_job",
}


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
    body = Fields.root(payload)
    subject = body.need_obj(event)  # each handled event's own object is named as the event
    if event in _ACTIONS_COVERED:
        app = subject.obj("app")
        if app is not None and app.text("slug") == _ACTIONS_APP:
            return Normalized(event_type=event, ignored=_ACTIONS_COVERED[event])
    conclusion = subject.text("conclusion")
    kind = _kind(conclusion)
    if kind is None:
        return Normalized(event_type=event, ignored=f"conclusion {conclusion} is not handled")
    repository = body.need_obj("repository")
    completed = _Completed(
        event=event,
        body=body,
        subject=subject,
        conclusion=conclusion,
        kind=kind,
        repo=repository.need_text("full_name"),
        default_branch=repository.text("default_branch"),
        repo_url=repository.text("html_url"),
        options=options,
    )
    return Normalized(event_type=event, signals=(_HANDLERS[event](completed),))


def _kind(conclusion: str | None) -> SignalKind | None:
    if conclusion in _FAILED:
        return SignalKind.CI_FAILURE
    if conclusion in _PASSED:
        return SignalKind.CI_RECOVERY
    return None


@dataclass(frozen=True)
class _Completed:
    """A completed run, job, suite or check that is a failure or a recovery: what every
    handler starts from."""

    event: str
    body: Fields
    subject: Fields
    conclusion: str | None
    kind: SignalKind
    repo: str
    default_branch: str | None
    repo_url: str | None
    options: NormalizeOptions

    def severity(self, branch: str | None) -> Severity:
        return ci_severity(
            branch=branch,
            default_branch=self.default_branch,
            default=self.options.default_severity_ci,
        )


def _workflow_run(completed: _Completed) -> SignalDraft:
    run = completed.subject
    run_id = run.ident("id")
    attempt = run.integer("run_attempt") or 1
    workflow = completed.body.obj("workflow")
    branch = run.text("head_branch")
    return ci_signal(
        source=SOURCE,
        kind=completed.kind,
        signal_key=f"workflow_run:{run_id}:{attempt}:{completed.conclusion}",
        occurred_at=run.need_time("updated_at"),
        severity=completed.severity(branch),
        repo=completed.repo,
        branch=branch,
        commit_sha=run.text("head_sha"),
        pipeline=run.text("name") or (workflow.text("name") if workflow else None) or "workflow",
        job=None,
        url=run.text("html_url"),
        labels=labels(
            event=completed.event,
            conclusion=completed.conclusion,
            run_id=run_id,
            run_attempt=str(attempt),
            workflow_id=run.optional_ident("workflow_id"),
        ),
    )


def _workflow_job(completed: _Completed) -> SignalDraft:
    job = completed.subject
    job_id = job.ident("id")
    attempt = job.integer("run_attempt") or 1
    failed = completed.kind is SignalKind.CI_FAILURE
    branch = job.text("head_branch")
    return ci_signal(
        source=SOURCE,
        kind=completed.kind,
        signal_key=f"workflow_job:{job_id}:{attempt}:{completed.conclusion}",
        occurred_at=job.need_time("completed_at"),
        severity=completed.severity(branch),
        repo=completed.repo,
        branch=branch,
        commit_sha=job.text("head_sha"),
        pipeline=job.text("workflow_name"),
        job=job.need_text("name"),
        url=job.text("html_url"),
        labels=labels(
            event=completed.event,
            conclusion=completed.conclusion,
            job_id=job_id,
            run_id=job.optional_ident("run_id"),
            run_attempt=str(attempt),
            failed_step=_failed_step(job) if failed else None,
        ),
    )


def _check_suite(completed: _Completed) -> SignalDraft:
    suite = completed.subject
    app = suite.obj("app")
    suite_id = suite.ident("id")
    updated_at = suite.need_text("updated_at")
    head_sha = suite.text("head_sha")
    url = None
    if completed.repo_url and head_sha:
        url = f"{completed.repo_url}/commit/{head_sha}/checks?check_suite_id={suite_id}"
    branch = suite.text("head_branch")
    return ci_signal(
        source=SOURCE,
        kind=completed.kind,
        # A re-requested suite keeps its id; its next completion is a new signal.
        signal_key=f"check_suite:{suite_id}:{completed.conclusion}:{updated_at}",
        occurred_at=suite.need_time("updated_at"),
        severity=completed.severity(branch),
        repo=completed.repo,
        branch=branch,
        commit_sha=head_sha,
        pipeline=(app.text("name") if app else None) or "check suite",
        job=None,
        url=url,
        labels=labels(
            event=completed.event, conclusion=completed.conclusion, check_suite_id=suite_id
        ),
    )


def _check_run(completed: _Completed) -> SignalDraft:
    check = completed.subject
    check_id = check.ident("id")
    suite = check.obj("check_suite")
    output = check.obj("output")
    branch = suite.text("head_branch") if suite else None
    return ci_signal(
        source=SOURCE,
        kind=completed.kind,
        signal_key=f"check_run:{check_id}:{completed.conclusion}",
        occurred_at=check.need_time("completed_at"),
        severity=completed.severity(branch),
        repo=completed.repo,
        branch=branch,
        commit_sha=check.text("head_sha"),
        pipeline=check.need_text("name"),
        job=None,
        url=check.text("html_url") or check.text("details_url"),
        labels=labels(
            event=completed.event, conclusion=completed.conclusion, check_run_id=check_id
        ),
        log_excerpt=_check_output(output) if output else "",
    )


_HANDLERS: dict[str, Callable[[_Completed], SignalDraft]] = {
    "workflow_run": _workflow_run,
    "workflow_job": _workflow_job,
    "check_suite": _check_suite,
    "check_run": _check_run,
}


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
