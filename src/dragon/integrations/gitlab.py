"""GitLab webhooks: `X-Gitlab-Token` verification, delivery keys, and Pipeline and Job hooks
normalized into signals.

A failed pipeline or job is a CI_FAILURE and a successful one a CI_RECOVERY with the same
fingerprint; other statuses, jobs allowed to fail, and every other hook are ignored with a
reason. Hooks are recognised by the payload's `object_kind` (the `X-Gitlab-Event` header only
names the event), so project, group and system hooks all work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dragon.domain.errors import Unauthenticated, ValidationFailed
from dragon.domain.signals import Normalized, NormalizeOptions, SignalKind
from dragon.integrations.normalization import (
    Fields,
    bounded_key,
    ci_severity,
    ci_signal,
    invalid,
    labels,
)
from dragon.integrations.webhook_auth import token_matches, usable_secrets

SOURCE: str = "gitlab"

_KINDS = {"failed": SignalKind.CI_FAILURE, "success": SignalKind.CI_RECOVERY}
_KIND_BY_HEADER = {"Pipeline Hook": "pipeline", "Job Hook": "build"}
# Pipelines without `workflow:name` have no name; jobs and pipelines must agree on it.
_UNNAMED_PIPELINE = "pipeline"


def authenticate(*, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> None:
    """Accept only an `X-Gitlab-Token` equal to one of the configured tokens."""
    keys = usable_secrets(secrets, source=SOURCE)
    if not token_matches(headers.get("x-gitlab-token"), secrets=keys):
        raise Unauthenticated("X-Gitlab-Token is missing or wrong", code="token_invalid")


def delivery_key(*, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
    key = (headers.get("x-gitlab-event-uuid") or "").strip()
    if not key:
        raise ValidationFailed(
            "the X-Gitlab-Event-UUID header is missing", code="delivery_key_missing"
        )
    return bounded_key(key)


def _kinds(headers: Mapping[str, str], payload: Any) -> tuple[str, str | None]:
    """The event type and the hook's object kind (from the payload, else the header)."""
    header = (headers.get("x-gitlab-event") or "").strip()
    object_kind = payload.get("object_kind") if isinstance(payload, Mapping) else None
    if not isinstance(object_kind, str) or not object_kind:
        object_kind = _KIND_BY_HEADER.get(header)
    return header or object_kind or "unknown", object_kind


def classify(*, headers: Mapping[str, str], payload: Any) -> Normalized:
    """The event type, or why the hook is ignored, from its kind alone (the accept path);
    signals come from `normalize`, in the worker."""
    event_type, object_kind = _kinds(headers, payload)
    if object_kind in ("pipeline", "build"):
        return Normalized(event_type=event_type)
    return Normalized(event_type=event_type, ignored=f"{event_type} events are not handled")


def normalize(*, headers: Mapping[str, str], payload: Any, options: NormalizeOptions) -> Normalized:
    event_type, object_kind = _kinds(headers, payload)
    if object_kind == "pipeline":
        return _pipeline(event_type, Fields.root(payload), options)
    if object_kind == "build":
        return _job(event_type, Fields.root(payload), options)
    return Normalized(event_type=event_type, ignored=f"{event_type} events are not handled")


def _pipeline(event_type: str, body: Fields, options: NormalizeOptions) -> Normalized:
    attrs = body.need_obj("object_attributes")
    status = attrs.need_text("status")
    kind = _KINDS.get(status)
    if kind is None:
        return Normalized(event_type=event_type, ignored=f"pipeline status {status}")
    project = body.need_obj("project")
    repo = project.need_text("path_with_namespace")
    pipeline_id = attrs.ident("id")
    web_url = project.text("web_url")
    url = attrs.text("url") or (f"{web_url}/-/pipelines/{pipeline_id}" if web_url else None)
    finished = attrs.text("finished_at")
    branch = attrs.text("ref")
    signal = ci_signal(
        source=SOURCE,
        kind=kind,
        # A retried pipeline keeps its id; each time it finishes is a new signal.
        signal_key=f"pipeline:{pipeline_id}:{status}:{finished or ''}",
        occurred_at=_first_time(attrs, "finished_at", "created_at"),
        severity=ci_severity(
            branch=branch,
            default_branch=project.text("default_branch"),
            default=options.default_severity_ci,
        ),
        repo=repo,
        branch=branch,
        commit_sha=attrs.text("sha"),
        pipeline=attrs.text("name") or _UNNAMED_PIPELINE,
        job=None,
        url=url,
        labels=labels(
            project_id=project.optional_ident("id"),
            pipeline_id=pipeline_id,
            status=status,
            source=attrs.text("source"),
        ),
        log_excerpt=_failed_builds(body) if kind is SignalKind.CI_FAILURE else "",
    )
    return Normalized(event_type=event_type, signals=(signal,))


def _job(event_type: str, body: Fields, options: NormalizeOptions) -> Normalized:
    status = body.need_text("build_status")
    kind = _KINDS.get(status)
    if kind is None:
        return Normalized(event_type=event_type, ignored=f"job status {status}")
    if kind is SignalKind.CI_FAILURE and body.flag("build_allow_failure"):
        return Normalized(event_type=event_type, ignored="the job is allowed to fail")
    project = body.obj("project")
    repo = project.text("path_with_namespace") if project else None
    repo = repo or body.text("project_name")
    if not repo:
        raise invalid("project.path_with_namespace", "a string is required")
    job_id = body.ident("build_id")
    repository = body.obj("repository")
    web_url = (project.text("web_url") if project else None) or (
        repository.text("homepage") if repository else None
    )
    commit = body.obj("commit")
    environment = body.obj("environment")
    branch = body.text("ref")
    signal = ci_signal(
        source=SOURCE,
        kind=kind,
        signal_key=f"build:{job_id}:{status}",
        occurred_at=_first_time(
            body,
            "build_finished_at_iso",
            "build_finished_at",
            "build_created_at_iso",
            "build_created_at",
        ),
        severity=ci_severity(
            branch=branch,
            default_branch=project.text("default_branch") if project else None,
            default=options.default_severity_ci,
        ),
        repo=repo,
        branch=branch,
        commit_sha=body.text("sha"),
        pipeline=(commit.text("name") if commit else None) or _UNNAMED_PIPELINE,
        job=body.need_text("build_name"),
        url=f"{web_url}/-/jobs/{job_id}" if web_url else None,
        environment=environment.text("name") if environment else None,
        labels=labels(
            project_id=body.optional_ident("project_id"),
            pipeline_id=body.optional_ident("pipeline_id"),
            job_id=job_id,
            stage=body.text("build_stage"),
            status=status,
            failure_reason=body.text("build_failure_reason")
            if kind is SignalKind.CI_FAILURE
            else None,
        ),
    )
    return Normalized(event_type=event_type, signals=(signal,))


def _first_time(fields: Fields, *keys: str) -> datetime:
    for key in keys:
        found = fields.time(key)
        if found is not None:
            return found
    raise invalid(fields.where(keys[0]), "a timestamp is required")


def _failed_builds(body: Fields) -> str:
    """One line per failed job of the pipeline; builds are a convenience, odd ones skipped."""
    lines = []
    for build in body.array("builds"):
        if isinstance(build, Mapping) and build.get("status") == "failed":
            reason = build.get("failure_reason") or "failed"
            lines.append(f"{build.get('stage')}/{build.get('name')}: {reason}")
    return "\n".join(lines)
