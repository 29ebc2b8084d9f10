"""Specification of Dragon's own normalized event (dragon.integrations.events), the body of
`POST /api/v1/events` after the API validated it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dragon.domain.enums import Severity
from dragon.domain.errors import ValidationFailed
from dragon.domain.signals import (
    NormalizeOptions,
    SignalDraft,
    SignalKind,
    alert_fingerprint,
    ci_fingerprint,
)
from dragon.integrations import events, github

OPTIONS = NormalizeOptions()
RECEIVED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GITHUB_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"


def ci_event(**changes: Any) -> dict[str, Any]:
    """An event as the API stores it (`model_dump(mode="json")`)."""
    event: dict[str, Any] = {
        "source": "buildkite",
        "kind": "ci_failure",
        "title": "deploy pipeline failed",
        "repo": "acme/shop",
        "branch": "main",
        "commit": "9f2c4e1d7b3a8c6e5f4d3c2b1a0918273645abcd",
        "pipeline": "deploy",
        "job": "migrate",
        "url": "https://buildkite.com/acme/shop/builds/812",
        "environment": None,
        "severity": "SEV2",
        "labels": {"team": "payments"},
        "log_excerpt": 'ERROR: relation "orders" already exists',
        "occurred_at": "2026-11-22T08:58:03Z",
    }
    event.update(changes)
    return event


def alert_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "source": "api",
        "kind": "alert_firing",
        "title": "Disk almost full on db-1",
        "severity": "SEV1",
        "environment": "production",
        "labels": {"alertname": "DiskFull", "service": "db", "namespace": "shop"},
        "occurred_at": "2026-11-22T08:58:03+00:00",
    }
    event.update(changes)
    return event


def one(payload: dict[str, Any], key: str = "idem-1", **kwargs: Any) -> SignalDraft:
    result = events.normalize_event(payload, key=key, options=OPTIONS, **kwargs)
    assert result.ignored is None
    assert len(result.signals) == 1
    return result.signals[0]


def test_the_source_of_api_events_is_api() -> None:
    assert events.SOURCE == "api"
    assert one(ci_event(source=None)).source == "api"


def test_a_ci_failure_event_becomes_a_signal_with_every_field() -> None:
    result = events.normalize_event(ci_event(), key="idem-1", options=OPTIONS)
    assert result.event_type == "ci_failure"
    signal = result.signals[0]
    assert signal.source == "buildkite"
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.signal_key == "idem-1"
    assert signal.title == "deploy pipeline failed"
    assert signal.severity is Severity.SEV2
    assert signal.occurred_at == datetime(2026, 11, 22, 8, 58, 3, tzinfo=UTC)
    assert (signal.repo, signal.branch, signal.commit_sha) == (
        "acme/shop",
        "main",
        "9f2c4e1d7b3a8c6e5f4d3c2b1a0918273645abcd",
    )
    assert (signal.pipeline, signal.job) == ("deploy", "migrate")
    assert signal.url == "https://buildkite.com/acme/shop/builds/812"
    assert signal.labels == {"team": "payments"}
    assert signal.log_excerpt == 'ERROR: relation "orders" already exists'
    assert signal.fingerprint == ci_fingerprint(
        provider="buildkite", repo="acme/shop", pipeline="deploy", job="migrate", branch="main"
    )


def test_a_ci_recovery_event_has_its_failures_fingerprint() -> None:
    failure = one(ci_event())
    recovery = one(ci_event(kind="ci_recovery", title="deploy passed"), key="idem-2")
    assert recovery.kind is SignalKind.CI_RECOVERY
    assert recovery.fingerprint == failure.fingerprint


def test_an_event_from_source_github_groups_with_the_github_webhook_for_the_same_workflow() -> None:
    payload = json.loads(
        (GITHUB_FIXTURES / "workflow_run.completed.failure.json").read_text(encoding="utf-8")
    )
    webhook = github.normalize(
        headers={"x-github-event": "workflow_run"}, payload=payload, options=OPTIONS
    ).signals[0]
    event = one(
        ci_event(
            source="github", repo="octo-org/octo-repo", branch="master", pipeline="test", job=None
        )
    )
    assert event.fingerprint == webhook.fingerprint


def test_an_alert_event_groups_by_alertname_and_the_grouping_labels() -> None:
    signal = one(alert_event())
    assert signal.kind is SignalKind.ALERT_FIRING
    assert signal.environment == "production"
    assert signal.fingerprint == alert_fingerprint(
        alertname="DiskFull",
        labels={"alertname": "DiskFull", "service": "db", "namespace": "shop"},
        grouping=OPTIONS.alert_grouping_labels,
    )


def test_a_resolved_alert_event_has_its_firing_fingerprint_even_with_another_title() -> None:
    firing = one(alert_event())
    resolved = one(alert_event(kind="alert_resolved", title="Disk usage back to normal"), key="k2")
    assert resolved.kind is SignalKind.ALERT_RESOLVED
    assert resolved.fingerprint == firing.fingerprint


def test_an_alert_event_without_an_alertname_label_is_named_by_its_title() -> None:
    signal = one(alert_event(labels={"service": "db"}))
    assert signal.fingerprint == alert_fingerprint(
        alertname="Disk almost full on db-1",
        labels={"service": "db"},
        grouping=OPTIONS.alert_grouping_labels,
    )


def test_a_fingerprint_given_by_the_caller_wins() -> None:
    assert one(ci_event(fingerprint="my-own-group")).fingerprint == "my-own-group"


def test_the_idempotency_key_is_the_signal_key_and_is_stable() -> None:
    assert one(ci_event(), key="run-812") == one(ci_event(), key="run-812")
    assert one(ci_event(), key="run-812").signal_key == "run-812"


def test_without_occurred_at_the_receipt_time_stands_in() -> None:
    assert one(ci_event(occurred_at=None), received_at=RECEIVED).occurred_at == RECEIVED


def test_without_occurred_at_or_a_receipt_time_the_event_is_payload_invalid() -> None:
    with pytest.raises(ValidationFailed) as caught:
        events.normalize_event(ci_event(occurred_at=None), key="k", options=OPTIONS)
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == "occurred_at"


def test_an_occurred_at_already_parsed_is_taken_as_is_and_a_naive_one_as_utc() -> None:
    aware = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
    assert one(ci_event(occurred_at=aware)).occurred_at == aware
    naive = datetime(2026, 11, 22, 7, 0)
    assert one(ci_event(occurred_at=naive)).occurred_at == aware


def test_without_a_severity_a_ci_event_takes_the_configured_ci_severity() -> None:
    options = NormalizeOptions(default_severity_ci=Severity.SEV4)
    result = events.normalize_event(ci_event(severity=None), key="k", options=options)
    assert result.signals[0].severity is Severity.SEV4


def test_long_titles_and_logs_are_cut_to_300_and_the_last_4000_characters() -> None:
    signal = one(ci_event(title="t" * 1_000, log_excerpt="x" * 5_000 + "the end"))
    assert len(signal.title) == 300
    assert len(signal.log_excerpt) == 4_000
    assert signal.log_excerpt.endswith("the end")


def test_an_event_without_a_key_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        events.normalize_event(ci_event(), key="", options=OPTIONS)
    assert caught.value.code == "delivery_key_missing"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "deployment"}, "kind"),
        ({"kind": None}, "kind"),
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"severity": "P1"}, "severity"),
        ({"severity": 2}, "severity"),
        ({"occurred_at": "last tuesday"}, "occurred_at"),
        ({"occurred_at": 1732262400}, "occurred_at"),
        ({"labels": {"team": 7}}, "labels.team"),
        ({"repo": ["acme/shop"]}, "repo"),
    ],
)
def test_a_malformed_event_is_payload_invalid_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        events.normalize_event(ci_event(**changes), key="k", options=OPTIONS)
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == field
