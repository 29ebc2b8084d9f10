"""Jenkins Notification plugin deliveries: signature or bearer-token verification, delivery
keys, and finished builds normalized into signals.

The plugin has no signing of its own; Dragon accepts either `X-Jenkins-Signature:
sha256=<hex>` (HMAC-SHA256 of the body, sent by a pipeline step) or `Authorization: Bearer
<token>` (a secret URL credential or proxy). A build notifies COMPLETED and then FINALIZED;
both carry the same signal key, so the second is a duplicate. FAILURE and UNSTABLE builds are
CI_FAILURE, SUCCESS is CI_RECOVERY; ABORTED, NOT_BUILT and unfinished phases are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from dragon.domain.errors import Unauthenticated, ValidationFailed
from dragon.domain.signals import Normalized, NormalizeOptions, SignalKind
from dragon.integrations.normalization import (
    Fields,
    bounded_key,
    ci_signal,
    invalid,
    labels,
    parse_time,
)
from dragon.integrations.webhook_auth import (
    bearer_token,
    signature_matches,
    token_matches,
    usable_secrets,
)

SOURCE: str = "jenkins"

_FINISHED_PHASES = frozenset({"COMPLETED", "FINALIZED"})
_KINDS = {
    "FAILURE": SignalKind.CI_FAILURE,
    "UNSTABLE": SignalKind.CI_FAILURE,
    "SUCCESS": SignalKind.CI_RECOVERY,
}
_JOB_SEGMENT = re.compile(r"(?:^|/)job/([^/]+)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_REMOTE_PREFIXES = ("refs/heads/", "refs/remotes/origin/", "origin/")


def authenticate(*, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> None:
    keys = usable_secrets(secrets, source=SOURCE)
    signed = signature_matches(headers.get("x-jenkins-signature"), body=body, secrets=keys)
    if not signed and not token_matches(bearer_token(headers), secrets=keys):
        raise Unauthenticated(
            "X-Jenkins-Signature or the bearer token is missing or wrong",
            code="signature_invalid",
        )


def delivery_key(*, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
    """Job, build number and phase: the plugin's retries of one notification share them."""
    if isinstance(payload, Mapping):
        build = payload.get("build")
        if isinstance(build, Mapping):
            job = _job_path(payload)
            number, phase = build.get("number"), build.get("phase")
            if job and isinstance(number, int) and isinstance(phase, str) and phase:
                return bounded_key(f"{job}#{number}#{phase.upper()}")
    raise ValidationFailed(
        "a Jenkins notification needs name, build.number and build.phase",
        code="delivery_key_missing",
    )


def classify(*, headers: Mapping[str, str], payload: Any) -> Normalized:
    """The event type from the build's phase, ignored unless the build finished: what the
    accept path needs. Signals come from `normalize`, in the worker."""
    phase = Fields.root(payload).need_obj("build").need_text("phase").upper()
    event_type = f"build_{phase.lower()}"
    if phase not in _FINISHED_PHASES:
        return Normalized(event_type=event_type, ignored=f"phase {phase}")
    return Normalized(event_type=event_type)


def normalize(*, headers: Mapping[str, str], payload: Any, options: NormalizeOptions) -> Normalized:
    meaning = classify(headers=headers, payload=payload)
    if meaning.ignored:
        return meaning
    event_type = meaning.event_type
    build = Fields.root(payload).need_obj("build")
    status = build.need_text("status").upper()
    kind = _KINDS.get(status)
    if kind is None:
        return Normalized(event_type=event_type, ignored=f"build status {status}")
    job = _job_path(payload)
    if job is None:
        raise invalid("name", "the job name is required")
    number = build.integer("number", required=True)
    scm = build.obj("scm")
    scm_url = scm.text("url") if scm else None
    signal = ci_signal(
        source=SOURCE,
        kind=kind,
        signal_key=f"{job}#{number}:{status}",
        occurred_at=_timestamp(build),
        severity=options.default_severity_ci,
        repo=_repo_from_url(scm_url),
        branch=_branch(scm.text("branch") if scm else None),
        commit_sha=scm.text("commit") if scm else None,
        pipeline=job,
        job=None,
        url=build.text("full_url"),
        labels=labels(
            job_name=job,
            build_number=str(number),
            status=status,
            scm_url=scm_url,
        ),
        log_excerpt=build.text("log") or "",
    )
    return Normalized(event_type=event_type, signals=(signal,))


def _job_path(payload: Mapping[str, Any]) -> str | None:
    """The job's full name: `shop/checkout/main` for `job/shop/job/checkout/job/main/`, so
    that branches of different multibranch projects (all named `main`) stay apart."""
    url = payload.get("url")
    if isinstance(url, str):
        segments = _JOB_SEGMENT.findall(url)
        if segments:
            return "/".join(unquote(segment) for segment in segments)
    name = payload.get("name")
    return name if isinstance(name, str) and name else None


def _timestamp(build: Fields) -> datetime:
    """Epoch milliseconds (what the plugin sends) or an ISO 8601 string."""
    value = build.raw("timestamp")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise invalid(build.where("timestamp"), "is out of range") from None
    if isinstance(value, str) and value:
        return parse_time(value, field=build.where("timestamp"))
    raise invalid(build.where("timestamp"), "epoch milliseconds or an ISO 8601 time is required")


def _branch(value: str | None) -> str | None:
    if not value:
        return None
    for prefix in _REMOTE_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


def _repo_from_url(url: str | None) -> str | None:
    """`acme/shop` for `https://github.com/acme/shop.git` or `git@github.com:acme/shop.git`."""
    if not url:
        return None
    path = url.strip().removesuffix("/").removesuffix(".git")
    if "://" in path:
        path = path.split("://", 1)[1]
        path = path.split("/", 1)[1] if "/" in path else ""
    elif ":" in path:
        path = path.split(":", 1)[1]
    return path.strip("/") or None
