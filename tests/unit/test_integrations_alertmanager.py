"""Specification of the Prometheus Alertmanager adapter (dragon.integrations.alertmanager).

Payloads follow the documented version 4 webhook shape (tests/fixtures/alertmanager).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dragon.domain.enums import Severity
from dragon.domain.errors import Unauthenticated, ValidationFailed
from dragon.domain.signals import (
    Normalized,
    NormalizeOptions,
    SignalKind,
    alert_fingerprint,
)
from dragon.integrations import alertmanager

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
OPTIONS = NormalizeOptions()
TOKEN = "am-bearer-93e1c0"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def normalize(payload: Any, options: NormalizeOptions = OPTIONS) -> Normalized:
    return alertmanager.normalize(headers={}, payload=payload, options=options)


def refusal_code(headers: dict[str, str], secrets: list[str]) -> str:
    with pytest.raises(Unauthenticated) as caught:
        alertmanager.authenticate(headers=headers, body=b"{}", secrets=secrets)
    return caught.value.code


# --- authentication -------------------------------------------------------------------------


def test_the_source_is_alertmanager() -> None:
    assert alertmanager.SOURCE == "alertmanager"


def test_the_configured_bearer_token_is_accepted() -> None:
    alertmanager.authenticate(
        headers={"authorization": f"Bearer {TOKEN}"}, body=b"{}", secrets=[TOKEN]
    )


def test_the_second_configured_token_is_accepted_during_rotation() -> None:
    alertmanager.authenticate(
        headers={"authorization": f"Bearer {TOKEN}"}, body=b"{}", secrets=["old", TOKEN]
    )


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("missing header", {}),
        ("wrong token", {"authorization": "Bearer am-bearer-000000"}),
        ("scheme only", {"authorization": "Bearer"}),
        ("basic scheme", {"authorization": f"Basic {TOKEN}"}),
        ("token without scheme", {"authorization": TOKEN}),
        ("token in another header", {"x-gitlab-token": TOKEN}),
    ],
)
def test_a_delivery_without_the_right_bearer_token_is_refused_as_token_invalid(
    case: str, headers: dict[str, str]
) -> None:
    assert refusal_code(headers, [TOKEN]) == "token_invalid", case


@pytest.mark.parametrize("secrets", [[], [""]])
def test_with_no_token_configured_every_delivery_is_refused(secrets: list[str]) -> None:
    assert refusal_code({"authorization": "Bearer "}, secrets) == "webhook_secret_missing"


# --- delivery key ---------------------------------------------------------------------------


def test_the_delivery_key_is_the_sha256_of_the_body() -> None:
    body = (FIXTURES / "firing.json").read_bytes()
    key = alertmanager.delivery_key(headers={}, payload=json.loads(body), body=body)
    assert key == hashlib.sha256(body).hexdigest()


def test_an_identical_retry_has_the_same_delivery_key_and_another_body_another() -> None:
    firing = (FIXTURES / "firing.json").read_bytes()
    resolved = (FIXTURES / "resolved.json").read_bytes()
    key = alertmanager.delivery_key
    assert key(headers={}, payload=None, body=firing) == key(headers={}, payload=None, body=firing)
    assert key(headers={}, payload=None, body=firing) != key(
        headers={}, payload=None, body=resolved
    )


# --- firing and resolved --------------------------------------------------------------------


def test_each_firing_alert_is_one_alert_firing_signal() -> None:
    payload = load("firing.json")
    result = normalize(payload)
    assert result.event_type == "alerts_firing"
    assert result.ignored is None
    assert [s.kind for s in result.signals] == [SignalKind.ALERT_FIRING] * 2
    first = result.signals[0]
    labels = payload["alerts"][0]["labels"]
    assert first.source == "alertmanager"
    assert first.signal_key == "8a1f2c3d4e5b6a71:firing:2024-11-22T08:55:12.345678901Z"
    assert first.fingerprint == alert_fingerprint(
        alertname="HighErrorRate", labels=labels, grouping=OPTIONS.alert_grouping_labels
    )
    assert first.title == "Checkout 5xx ratio above 5% for 5 minutes"
    assert first.severity is Severity.SEV1
    assert first.url == payload["alerts"][0]["generatorURL"]
    assert first.environment == "production"
    assert first.repo == "acme/checkout-service"
    assert first.commit_sha == "9f2c4e1d7b3a8c6e5f4d3c2b1a0918273645abcd"
    assert first.occurred_at == datetime(2024, 11, 22, 8, 55, 12, 345678, tzinfo=UTC)
    assert first.labels == labels
    assert first.log_excerpt == "checkout-7d9f8b6c5-x2k4p answers 12.4% of requests with 5xx."


def test_alerts_of_one_group_share_a_fingerprint_but_not_a_signal_key() -> None:
    first, second = normalize(load("firing.json")).signals
    assert first.fingerprint == second.fingerprint
    assert first.signal_key != second.signal_key


def test_a_resolved_alert_carries_its_firing_fingerprint_and_its_end_time() -> None:
    firing = normalize(load("firing.json")).signals
    result = normalize(load("resolved.json"))
    assert result.event_type == "alerts_resolved"
    assert [s.kind for s in result.signals] == [SignalKind.ALERT_RESOLVED] * 2
    assert [s.fingerprint for s in result.signals] == [s.fingerprint for s in firing]
    assert result.signals[0].signal_key == (
        "8a1f2c3d4e5b6a71:resolved:2024-11-22T08:55:12.345678901Z"
    )
    assert result.signals[0].occurred_at == datetime(2024, 11, 22, 9, 20, 12, 345678, tzinfo=UTC)


def test_an_alert_resolved_beside_one_still_firing_in_its_incident_gives_no_signal() -> None:
    # One pod of two recovered: resolving the incident now would hide the other, still firing.
    result = normalize(load("mixed.json"))
    assert [s.kind for s in result.signals] == [SignalKind.ALERT_FIRING]
    assert result.ignored is None


def test_a_resolved_alert_of_another_incident_beside_a_firing_one_is_kept() -> None:
    mixed = load("mixed.json")
    mixed["alerts"][1]["labels"]["service"] = "payments"  # another fingerprint: its own incident
    result = normalize(mixed)
    assert [s.kind for s in result.signals] == [
        SignalKind.ALERT_FIRING,
        SignalKind.ALERT_RESOLVED,
    ]


def test_a_repeat_notification_for_a_still_firing_alert_gives_the_same_signal_key() -> None:
    first = normalize(load("firing.json")).signals[0]
    repeat = load("firing.json")
    repeat["alerts"][0]["annotations"]["description"] = "now 14.0% of requests"
    again = normalize(repeat).signals[0]
    assert again.signal_key == first.signal_key


def test_the_same_alert_firing_again_later_is_a_new_signal() -> None:
    first = normalize(load("firing.json")).signals[0]
    later = load("firing.json")
    later["alerts"][0]["startsAt"] = "2024-11-22T11:02:00Z"
    again = normalize(later).signals[0]
    assert again.signal_key != first.signal_key
    assert again.fingerprint == first.fingerprint


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", Severity.SEV1),
        ("CRITICAL", Severity.SEV1),
        ("error", Severity.SEV2),
        ("high", Severity.SEV2),
        ("warning", Severity.SEV3),
        ("info", Severity.SEV4),
        ("page-someone", Severity.SEV4),
        (None, Severity.SEV4),
    ],
)
def test_the_severity_label_maps_to_a_severity(severity: str | None, expected: Severity) -> None:
    payload = load("firing.json")
    labels = payload["alerts"][0]["labels"]
    if severity is None:
        del labels["severity"]
    else:
        labels["severity"] = severity
    assert normalize(payload).signals[0].severity is expected


def test_alerts_differing_in_a_grouping_label_are_grouped_apart() -> None:
    payload = load("firing.json")
    payload["alerts"][1]["labels"]["service"] = "payments"
    first, second = normalize(payload).signals
    assert first.fingerprint != second.fingerprint


def test_the_configured_grouping_labels_decide_the_fingerprint() -> None:
    payload = load("firing.json")
    payload["alerts"][1]["labels"]["service"] = "payments"
    by_name_only = NormalizeOptions(alert_grouping_labels=("alertname",))
    first, second = normalize(payload, by_name_only).signals
    assert first.fingerprint == second.fingerprint


def test_without_a_summary_the_alert_name_is_the_title() -> None:
    payload = load("firing.json")
    del payload["alerts"][0]["annotations"]["summary"]
    assert normalize(payload).signals[0].title == "HighErrorRate"


def test_without_a_generator_url_the_alertmanager_url_is_the_link() -> None:
    payload = load("firing.json")
    payload["alerts"][0]["generatorURL"] = ""
    assert normalize(payload).signals[0].url == "http://alertmanager.example.com:9093"


def test_the_environment_label_may_also_be_spelled_environment() -> None:
    payload = load("firing.json")
    labels = payload["alerts"][0]["labels"]
    del labels["env"]
    labels["environment"] = "staging"
    del labels["commit"]
    labels["commit_sha"] = "3b7e9a0c1d2e3f405162738495a6b7c8d9e0f1a2"
    signal = normalize(payload).signals[0]
    assert signal.environment == "staging"
    assert signal.commit_sha == "3b7e9a0c1d2e3f405162738495a6b7c8d9e0f1a2"


def test_an_alert_without_an_alertmanager_fingerprint_is_keyed_by_its_labels() -> None:
    payload = load("firing.json")
    del payload["alerts"][0]["fingerprint"]
    first = normalize(payload).signals[0]
    again = normalize(payload).signals[0]
    assert first.signal_key == again.signal_key
    assert first.signal_key.endswith(":firing:2024-11-22T08:55:12.345678901Z")


def test_a_notification_without_alerts_is_ignored() -> None:
    payload = load("firing.json")
    payload["alerts"] = []
    result = normalize(payload)
    assert result.signals == ()
    assert result.ignored is not None


# --- malformed notifications ----------------------------------------------------------------


@pytest.mark.parametrize("version", ["3", 4, None])
def test_a_payload_version_other_than_4_is_payload_invalid(version: Any) -> None:
    payload = load("firing.json")
    payload["version"] = version
    with pytest.raises(ValidationFailed) as caught:
        normalize(payload)
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == "version"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("alerts"), "alerts"),
        (lambda p: p.update(alerts={"status": "firing"}), "alerts"),
        (lambda p: p["alerts"].append("HighErrorRate"), "alerts.2"),
        (lambda p: p["alerts"][0].update(status="pending"), "alerts.0.status"),
        (lambda p: p["alerts"][0].pop("labels"), "alerts.0.labels"),
        (lambda p: p["alerts"][1]["labels"].update(severity=1), "alerts.1.labels.severity"),
        (lambda p: p["alerts"][0].update(annotations=["x"]), "alerts.0.annotations"),
        (lambda p: p["alerts"][0].update(startsAt="a while ago"), "alerts.0.startsAt"),
        (lambda p: p["alerts"][0].pop("startsAt"), "alerts.0.startsAt"),
    ],
)
def test_a_malformed_alert_is_payload_invalid_naming_the_field(mutate: Any, field: str) -> None:
    payload = load("firing.json")
    mutate(payload)
    with pytest.raises(ValidationFailed) as caught:
        normalize(payload)
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == field


def test_a_payload_that_is_not_an_object_is_payload_invalid() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize([load("firing.json")])
    assert caught.value.details["field"] == "$"
