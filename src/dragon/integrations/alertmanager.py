"""Prometheus Alertmanager webhooks (payload version 4): bearer-token verification, delivery
keys, and one signal per alert.

A firing alert is ALERT_FIRING and a resolved one ALERT_RESOLVED; both carry the fingerprint of
the alert name and the configured grouping labels, so a resolution finds its incident. The
signal key is the alert's own Alertmanager fingerprint, status and start time: the repeat
notifications Alertmanager sends for a still-firing alert add nothing new.

A notification lists every alert of its group, firing and resolved. An alert resolved beside
one still firing under the same fingerprint (one pod of two recovered) gives no signal: its
resolution would resolve the incident while the other alert fires. The group's last alert to
resolve does, in the notification where none fires any more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from dragon.domain.enums import Severity
from dragon.domain.errors import Unauthenticated
from dragon.domain.signals import (
    Normalized,
    NormalizeOptions,
    SignalDraft,
    SignalKind,
    alert_fingerprint,
    fingerprint,
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
from dragon.integrations.webhook_auth import bearer_token, token_matches, usable_secrets

SOURCE: str = "alertmanager"

_VERSION = "4"
_KINDS = {"firing": SignalKind.ALERT_FIRING, "resolved": SignalKind.ALERT_RESOLVED}
_SEVERITIES = {
    "critical": Severity.SEV1,
    "error": Severity.SEV2,
    "high": Severity.SEV2,
    "warning": Severity.SEV3,
}
# Alertmanager's "not ended yet": a firing alert's endsAt.
_ZERO_TIME_PREFIX = "0001-01-01"


def authenticate(*, headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> None:
    """Accept only `Authorization: Bearer <token>` with one of the configured tokens (the
    receiver's `http_config.authorization.credentials`)."""
    keys = usable_secrets(secrets, source=SOURCE)
    if not token_matches(bearer_token(headers), secrets=keys):
        raise Unauthenticated("the bearer token is missing or wrong", code="token_invalid")


def delivery_key(*, headers: Mapping[str, str], payload: Any, body: bytes) -> str:
    """The SHA-256 of the body: Alertmanager retries a notification with identical bytes."""
    return hashlib.sha256(body).hexdigest()


def classify(*, headers: Mapping[str, str], payload: Any) -> Normalized:
    """The event type from the payload's version and status (the accept path); the alerts'
    signals come from `normalize`, in the worker."""
    body = Fields.root(payload)
    if body.raw("version") != _VERSION:
        raise invalid("version", f"only webhook payload version {_VERSION} is supported")
    status = body.text("status")
    return Normalized(event_type=f"alerts_{status}" if status in _KINDS else "alerts")


def normalize(*, headers: Mapping[str, str], payload: Any, options: NormalizeOptions) -> Normalized:
    event_type = classify(headers=headers, payload=payload).event_type
    body = Fields.root(payload)
    items = body.array("alerts", required=True)
    external_url = body.text("externalURL")
    alerts = [
        _alert(Fields(_object(item, f"alerts.{index}"), f"alerts.{index}"), options, external_url)
        for index, item in enumerate(items)
    ]
    if not alerts:
        return Normalized(event_type=event_type, ignored="the notification has no alerts")
    firing = {a.fingerprint for a in alerts if a.kind is SignalKind.ALERT_FIRING}
    signals = tuple(
        a for a in alerts if a.kind is SignalKind.ALERT_FIRING or a.fingerprint not in firing
    )
    return Normalized(event_type=event_type, signals=signals)


def _object(item: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise invalid(path, "must be an object")
    return item


def _alert(alert: Fields, options: NormalizeOptions, external_url: str | None) -> SignalDraft:
    status = alert.need_text("status")
    kind = _KINDS.get(status)
    if kind is None:
        raise invalid(alert.where("status"), "must be firing or resolved")
    labels = alert.string_map("labels", required=True)
    annotations = alert.string_map("annotations")
    starts_at = alert.need_text("startsAt")
    started = parse_time(starts_at, field=alert.where("startsAt"))
    ends_at = alert.text("endsAt")
    occurred_at = started
    if kind is SignalKind.ALERT_RESOLVED and ends_at and not ends_at.startswith(_ZERO_TIME_PREFIX):
        occurred_at = parse_time(ends_at, field=alert.where("endsAt"))
    alertname = labels.get("alertname", "")
    # Alertmanager has sent `fingerprint` since 0.19; before that, the labels identify an alert.
    identity = alert.text("fingerprint") or fingerprint(
        *(f"{k}={v}" for k, v in sorted(labels.items()))
    )
    draft = SignalDraft(
        source=SOURCE,
        kind=kind,
        signal_key=bounded_key(f"{identity}:{status}:{starts_at}"),
        fingerprint=alert_fingerprint(
            alertname=alertname, labels=labels, grouping=options.alert_grouping_labels
        ),
        title=title_text(annotations.get("summary") or alertname or "Alertmanager alert"),
        severity=_SEVERITIES.get(labels.get("severity", "").lower(), Severity.SEV4),
        occurred_at=occurred_at,
        repo=labels.get("repo") or None,
        branch=labels.get("branch") or None,
        commit_sha=labels.get("commit") or labels.get("commit_sha") or None,
        url=alert.text("generatorURL") or external_url or None,
        environment=labels.get("env") or labels.get("environment") or None,
        labels=labels,
        log_excerpt=log_tail(annotations.get("description")),
    )
    return fitted(draft)
