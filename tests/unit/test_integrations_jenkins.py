"""Specification of the Jenkins Notification plugin adapter (dragon.integrations.jenkins).

Payloads follow the plugin's JobState model (tests/fixtures/jenkins).
"""

from __future__ import annotations

import hashlib
import hmac
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
    SignalDraft,
    SignalKind,
    ci_fingerprint,
)
from dragon.integrations import jenkins

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jenkins"
OPTIONS = NormalizeOptions()
SECRET = "jenkins-hook-4b1d"
BODY = (FIXTURES / "completed.failure.json").read_bytes()


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def normalize(payload: Any, options: NormalizeOptions = OPTIONS) -> Normalized:
    return jenkins.normalize(headers={}, payload=payload, options=options)


def only_signal(payload: Any) -> SignalDraft:
    result = normalize(payload)
    assert result.ignored is None, result.ignored
    assert len(result.signals) == 1
    return result.signals[0]


def refusal_code(headers: dict[str, str], secrets: list[str]) -> str:
    with pytest.raises(Unauthenticated) as caught:
        jenkins.authenticate(headers=headers, body=BODY, secrets=secrets)
    return caught.value.code


# --- authentication -------------------------------------------------------------------------


def test_the_source_is_jenkins() -> None:
    assert jenkins.SOURCE == "jenkins"


def test_an_hmac_signature_of_the_body_is_accepted() -> None:
    jenkins.authenticate(
        headers={"x-jenkins-signature": sign(SECRET, BODY)}, body=BODY, secrets=[SECRET]
    )


def test_a_bearer_token_equal_to_a_secret_is_accepted() -> None:
    jenkins.authenticate(headers={"authorization": f"Bearer {SECRET}"}, body=BODY, secrets=[SECRET])


def test_the_second_secret_is_accepted_for_signatures_and_tokens_during_rotation() -> None:
    secrets = ["retired-secret", SECRET]
    jenkins.authenticate(
        headers={"x-jenkins-signature": sign(SECRET, BODY)}, body=BODY, secrets=secrets
    )
    jenkins.authenticate(headers={"authorization": f"bearer {SECRET}"}, body=BODY, secrets=secrets)


def test_a_valid_token_is_enough_even_beside_a_wrong_signature() -> None:
    jenkins.authenticate(
        headers={"authorization": f"Bearer {SECRET}", "x-jenkins-signature": sign("x", BODY)},
        body=BODY,
        secrets=[SECRET],
    )


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("no credentials", {}),
        ("wrong bearer token", {"authorization": "Bearer not-the-secret"}),
        ("empty bearer token", {"authorization": "Bearer "}),
        ("basic scheme", {"authorization": f"Basic {SECRET}"}),
        ("token without scheme", {"authorization": SECRET}),
        ("signature under another secret", {"x-jenkins-signature": sign("other", BODY)}),
        ("signature of another body", {"x-jenkins-signature": sign(SECRET, b"{}")}),
        ("truncated signature", {"x-jenkins-signature": sign(SECRET, BODY)[:-1]}),
        ("signature without prefix", {"x-jenkins-signature": sign(SECRET, BODY)[7:]}),
        (
            "sha1 signature",
            {"x-jenkins-signature": "sha1=" + hmac.new(SECRET.encode(), BODY, "sha1").hexdigest()},
        ),
    ],
)
def test_a_delivery_without_a_valid_signature_or_token_is_refused_as_signature_invalid(
    case: str, headers: dict[str, str]
) -> None:
    assert refusal_code(headers, [SECRET]) == "signature_invalid", case


@pytest.mark.parametrize("secrets", [[], [""]])
def test_with_no_secret_configured_every_delivery_is_refused(secrets: list[str]) -> None:
    assert refusal_code({"authorization": "Bearer "}, secrets) == "webhook_secret_missing"


# --- delivery key ---------------------------------------------------------------------------


def test_the_delivery_key_is_job_build_number_and_phase() -> None:
    completed = jenkins.delivery_key(headers={}, payload=load("completed.failure.json"), body=BODY)
    finalized = jenkins.delivery_key(headers={}, payload=load("finalized.failure.json"), body=BODY)
    assert completed == "checkout-service#128#COMPLETED"
    assert finalized == "checkout-service#128#FINALIZED"


def test_a_job_in_folders_is_keyed_by_its_full_name() -> None:
    payload = load("completed.failure.json")
    payload["name"] = "main"
    payload["url"] = "job/shop/job/checkout%20service/job/main/"
    key = jenkins.delivery_key(headers={}, payload=payload, body=BODY)
    assert key == "shop/checkout service/main#128#COMPLETED"


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"name": "checkout-service"},
        {"name": "checkout-service", "build": {"phase": "COMPLETED"}},
        {"name": "checkout-service", "build": {"number": "128", "phase": "COMPLETED"}},
        {"name": "checkout-service", "build": {"number": 128}},
        {"build": {"number": 128, "phase": "COMPLETED"}},
    ],
)
def test_a_notification_without_job_number_and_phase_has_no_delivery_key(payload: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        jenkins.delivery_key(headers={}, payload=payload, body=b"{}")
    assert caught.value.code == "delivery_key_missing"


# --- finished builds ------------------------------------------------------------------------


def test_a_failed_build_is_a_ci_failure_with_the_build_facts() -> None:
    signal = only_signal(load("completed.failure.json"))
    assert signal.source == "jenkins"
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.repo == "acme/checkout-service"
    assert signal.branch == "main"
    assert signal.commit_sha == "9f2c4e1d7b3a8c6e5f4d3c2b1a0918273645abcd"
    assert signal.pipeline == "checkout-service"
    assert signal.job is None
    assert signal.url == "https://ci.example.com/job/checkout-service/128/"
    assert signal.occurred_at == datetime(2024, 11, 22, 8, 0, tzinfo=UTC)
    assert signal.signal_key == "checkout-service#128:FAILURE"
    assert signal.fingerprint == ci_fingerprint(
        provider="jenkins",
        repo="acme/checkout-service",
        pipeline="checkout-service",
        job=None,
        branch="main",
    )
    assert signal.title == "CI failed: checkout-service on acme/checkout-service@main"
    assert signal.severity is Severity.SEV3
    assert signal.log_excerpt.endswith("Finished: FAILURE\n")
    assert signal.labels["build_number"] == "128"


def test_completed_and_finalized_notifications_of_one_build_share_the_signal_key() -> None:
    completed = only_signal(load("completed.failure.json"))
    finalized = only_signal(load("finalized.failure.json"))
    assert finalized.signal_key == completed.signal_key
    assert finalized.fingerprint == completed.fingerprint


def test_a_successful_build_is_a_recovery_with_the_failures_fingerprint() -> None:
    failure = only_signal(load("completed.failure.json"))
    success = only_signal(load("completed.success.json"))
    assert success.kind is SignalKind.CI_RECOVERY
    assert success.fingerprint == failure.fingerprint
    assert success.signal_key == "checkout-service#129:SUCCESS"
    assert success.title == "CI recovered: checkout-service on acme/checkout-service@main"


def test_an_unstable_build_is_a_failure() -> None:
    payload = load("completed.failure.json")
    payload["build"]["status"] = "UNSTABLE"
    signal = only_signal(payload)
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.signal_key == "checkout-service#128:UNSTABLE"


@pytest.mark.parametrize("status", ["ABORTED", "NOT_BUILT"])
def test_aborted_and_not_built_builds_are_ignored(status: str) -> None:
    payload = load("completed.failure.json")
    payload["build"]["status"] = status
    result = normalize(payload)
    assert result.signals == ()
    assert result.ignored is not None
    assert status in result.ignored


@pytest.mark.parametrize("phase", ["QUEUED", "STARTED"])
def test_builds_that_have_not_finished_are_ignored(phase: str) -> None:
    payload = load("started.json")
    payload["build"]["phase"] = phase
    result = normalize(payload)
    assert result.event_type == f"build_{phase.lower()}"
    assert result.signals == ()
    assert result.ignored is not None


def test_the_log_excerpt_keeps_the_last_4000_characters() -> None:
    payload = load("completed.failure.json")
    payload["build"]["log"] = "x" * 10_000 + "the real error\n"
    signal = only_signal(payload)
    assert len(signal.log_excerpt) == 4_000
    assert signal.log_excerpt.endswith("the real error\n")


def test_a_timestamp_sent_as_iso_8601_is_read() -> None:
    payload = load("completed.failure.json")
    payload["build"]["timestamp"] = "2024-11-22T08:00:00.5+00:00"
    assert only_signal(payload).occurred_at == datetime(2024, 11, 22, 8, 0, 0, 500_000, tzinfo=UTC)


def test_branches_of_two_multibranch_projects_are_grouped_apart() -> None:
    shop, billing = load("completed.failure.json"), load("completed.failure.json")
    shop.update(name="main", url="job/shop/job/main/")
    billing.update(name="main", url="job/billing/job/main/")
    first, second = only_signal(shop), only_signal(billing)
    assert first.pipeline == "shop/main"
    assert second.pipeline == "billing/main"
    assert first.fingerprint != second.fingerprint
    assert first.signal_key != second.signal_key


@pytest.mark.parametrize(
    ("scm_url", "repo"),
    [
        ("git@github.com:acme/checkout-service.git", "acme/checkout-service"),
        ("ssh://git@gitlab.example.com:2222/group/sub/app.git", "group/sub/app"),
        ("https://bitbucket.example.com/scm/shop/cart/", "scm/shop/cart"),
    ],
)
def test_the_repository_is_the_path_of_the_scm_url(scm_url: str, repo: str) -> None:
    payload = load("completed.failure.json")
    payload["build"]["scm"]["url"] = scm_url
    assert only_signal(payload).repo == repo


@pytest.mark.parametrize(
    ("branch", "expected"),
    [("origin/release/2.1", "release/2.1"), ("refs/heads/main", "main"), ("main", "main")],
)
def test_the_branch_loses_its_remote_prefix(branch: str, expected: str) -> None:
    payload = load("completed.failure.json")
    payload["build"]["scm"]["branch"] = branch
    assert only_signal(payload).branch == expected


def test_a_build_without_scm_has_no_repo_branch_or_commit() -> None:
    payload = load("completed.failure.json")
    del payload["build"]["scm"]
    signal = only_signal(payload)
    assert (signal.repo, signal.branch, signal.commit_sha) == (None, None, None)
    assert signal.title == "CI failed: checkout-service"


# --- malformed notifications ----------------------------------------------------------------


def test_the_readme_example_without_a_timestamp_is_payload_invalid() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize(load("readme_example.json"))
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == "build.timestamp"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("build"), "build"),
        (lambda p: p.update(build="128"), "build"),
        (lambda p: p["build"].update(phase=3), "build.phase"),
        (lambda p: p["build"].pop("status"), "build.status"),
        (lambda p: p["build"].update(number="128"), "build.number"),
        (lambda p: p["build"].update(timestamp="yesterday"), "build.timestamp"),
        (lambda p: p["build"].update(timestamp=10**20), "build.timestamp"),
        (lambda p: p["build"].update(scm=["git"]), "build.scm"),
        (lambda p: p["build"].update(log=["line"]), "build.log"),
        (lambda p: (p.pop("name"), p.pop("url")), "name"),
    ],
)
def test_a_finished_build_missing_a_needed_field_is_payload_invalid_naming_it(
    mutate: Any, field: str
) -> None:
    payload = load("completed.failure.json")
    mutate(payload)
    with pytest.raises(ValidationFailed) as caught:
        normalize(payload)
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == field


def test_a_payload_that_is_not_an_object_is_payload_invalid() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize("checkout-service")
    assert caught.value.details["field"] == "$"
