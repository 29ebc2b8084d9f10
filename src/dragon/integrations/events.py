"""Dragon's own normalized event (`POST /api/v1/events`), sent by any tool with an API key.

The API has validated the fields already; this turns them into a signal with the same
fingerprint a vendor webhook would give (`source` plays the CI provider), so events and
webhooks about the same pipeline or alert group together. The caller's idempotency key is the
signal key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dragon.domain.enums import Severity
from dragon.domain.errors import ValidationFailed
from dragon.domain.signals import (
    Normalized,
    NormalizeOptions,
    SignalDraft,
    SignalKind,
    alert_fingerprint,
    ci_fingerprint,
)
from dragon.integrations.normalization import (
    Fields,
    bounded_key,
    fitted,
    invalid,
    log_tail,
    parse_time,
    title_text,
)

SOURCE: str = "api"

_CI_KINDS = frozenset({SignalKind.CI_FAILURE, SignalKind.CI_RECOVERY})


def normalize_event(
    payload: Mapping[str, Any],
    *,
    key: str,
    options: NormalizeOptions,
    received_at: datetime | None = None,
) -> Normalized:
    """One event, one signal. `received_at` stands in for a missing `occurred_at`."""
    if not key:
        raise ValidationFailed("an event needs an idempotency key", code="delivery_key_missing")
    event = Fields.root(payload)
    kind = _kind(event)
    source = event.text("source") or SOURCE
    title = event.need_text("title")
    labels = event.string_map("labels")
    repo, branch = event.text("repo"), event.text("branch")
    pipeline, job = event.text("pipeline"), event.text("job")
    override = event.text("fingerprint")
    if override:
        group = override
    elif kind in _CI_KINDS:
        group = ci_fingerprint(
            provider=source, repo=repo, pipeline=pipeline, job=job, branch=branch
        )
    else:
        group = alert_fingerprint(
            alertname=labels.get("alertname") or title,
            labels=labels,
            grouping=options.alert_grouping_labels,
        )
    signal = SignalDraft(
        source=source,
        kind=kind,
        signal_key=bounded_key(key),
        fingerprint=group,
        title=title_text(title),
        severity=_severity(event, kind, options),
        occurred_at=_occurred_at(event, received_at),
        repo=repo,
        branch=branch,
        commit_sha=event.text("commit"),
        pipeline=pipeline,
        job=job,
        url=event.text("url"),
        environment=event.text("environment"),
        labels=labels,
        log_excerpt=log_tail(event.text("log_excerpt")),
    )
    return Normalized(event_type=kind.value, signals=(fitted(signal),))


def _kind(event: Fields) -> SignalKind:
    value = event.need_text("kind")
    try:
        return SignalKind(value)
    except ValueError:
        choices = ", ".join(k.value for k in SignalKind)
        raise invalid("kind", f"must be one of {choices}") from None


def _severity(event: Fields, kind: SignalKind, options: NormalizeOptions) -> Severity:
    value = event.raw("severity")
    if value is None:
        return options.default_severity_ci if kind in _CI_KINDS else Severity.SEV3
    if isinstance(value, Severity):
        return value
    if isinstance(value, str):
        try:
            return Severity(value.upper())
        except ValueError:
            pass
    raise invalid("severity", "must be one of SEV1, SEV2, SEV3, SEV4")


def _occurred_at(event: Fields, received_at: datetime | None) -> datetime:
    value = event.raw("occurred_at")
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        return parse_time(value, field="occurred_at")
    if value is not None:
        raise invalid("occurred_at", "must be an ISO 8601 time")
    if received_at is None:
        raise invalid("occurred_at", "is required when the receipt time is unknown")
    return received_at
