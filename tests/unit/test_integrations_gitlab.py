"""Specification of the GitLab webhook adapter (dragon.integrations.gitlab).

Payloads follow GitLab's "Webhook events" documentation (tests/fixtures/gitlab).
"""

from __future__ import annotations

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
from dragon.integrations import gitlab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gitlab"
OPTIONS = NormalizeOptions()
TOKEN = "glwht-7f3c9a1e5b"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def normalize(payload: Any, header: str | None) -> Normalized:
    headers = {"x-gitlab-event": header} if header else {}
    return gitlab.normalize(headers=headers, payload=payload, options=OPTIONS)


def only_signal(payload: Any, header: str) -> SignalDraft:
    result = normalize(payload, header)
    assert result.ignored is None, result.ignored
    assert len(result.signals) == 1
    return result.signals[0]


def refusal_code(headers: dict[str, str], secrets: list[str]) -> str:
    with pytest.raises(Unauthenticated) as caught:
        gitlab.authenticate(headers=headers, body=b"{}", secrets=secrets)
    return caught.value.code


# --- authentication -------------------------------------------------------------------------


def test_the_source_is_gitlab() -> None:
    assert gitlab.SOURCE == "gitlab"


def test_the_configured_token_is_accepted() -> None:
    gitlab.authenticate(headers={"x-gitlab-token": TOKEN}, body=b"{}", secrets=[TOKEN])


def test_the_second_configured_token_is_accepted_during_rotation() -> None:
    gitlab.authenticate(headers={"x-gitlab-token": TOKEN}, body=b"{}", secrets=["old-one", TOKEN])


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("missing header", {}),
        ("empty", {"x-gitlab-token": ""}),
        ("wrong", {"x-gitlab-token": "glwht-0000000000"}),
        ("a prefix of the token", {"x-gitlab-token": TOKEN[:-1]}),
        ("the token and more", {"x-gitlab-token": TOKEN + "x"}),
        ("another case", {"x-gitlab-token": TOKEN.upper()}),
        ("as a bearer token", {"authorization": f"Bearer {TOKEN}"}),
    ],
)
def test_a_delivery_without_the_right_token_is_refused_as_token_invalid(
    case: str, headers: dict[str, str]
) -> None:
    assert refusal_code(headers, [TOKEN]) == "token_invalid", case


@pytest.mark.parametrize("secrets", [[], [""]])
def test_with_no_token_configured_every_delivery_is_refused(secrets: list[str]) -> None:
    assert refusal_code({"x-gitlab-token": ""}, secrets) == "webhook_secret_missing"


def test_a_refusal_message_never_contains_the_token() -> None:
    with pytest.raises(Unauthenticated) as caught:
        gitlab.authenticate(headers={"x-gitlab-token": "guess"}, body=b"{}", secrets=[TOKEN])
    text = f"{caught.value} {caught.value.details}"
    assert TOKEN not in text
    assert "guess" not in text


# --- delivery key ---------------------------------------------------------------------------


def test_the_delivery_key_is_the_x_gitlab_event_uuid_header() -> None:
    uuid = "0d8ac4b4-3b4f-4cb4-9a0d-8b2d5a1d3c1e"
    key = gitlab.delivery_key(
        headers={"x-gitlab-event-uuid": uuid}, payload=load("pipeline.failed.json"), body=b"{}"
    )
    assert key == uuid


@pytest.mark.parametrize("headers", [{}, {"x-gitlab-event-uuid": ""}])
def test_a_delivery_without_x_gitlab_event_uuid_has_no_key(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        gitlab.delivery_key(headers=headers, payload={}, body=b"{}")
    assert caught.value.code == "delivery_key_missing"


# --- Pipeline Hook --------------------------------------------------------------------------


def test_a_failed_pipeline_is_a_ci_failure_with_the_pipeline_facts() -> None:
    signal = only_signal(load("pipeline.failed.json"), "Pipeline Hook")
    assert signal.source == "gitlab"
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.repo == "gitlab-org/gitlab-test"
    assert signal.branch == "master"
    assert signal.commit_sha == "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
    assert signal.pipeline == "Pipeline for branch: master"
    assert signal.job is None
    assert signal.url == "http://example.com/gitlab-org/gitlab-test/-/pipelines/30"
    assert signal.occurred_at == datetime(2016, 8, 12, 15, 16, 29, tzinfo=UTC)
    assert signal.signal_key == "pipeline:30:failed:2016-08-12 15:16:29 UTC"
    assert signal.fingerprint == ci_fingerprint(
        provider="gitlab",
        repo="gitlab-org/gitlab-test",
        pipeline="Pipeline for branch: master",
        job=None,
        branch="master",
    )
    assert signal.title == "CI failed: Pipeline for branch: master on gitlab-org/gitlab-test@master"
    assert signal.labels["pipeline_id"] == "30"
    assert signal.labels["project_id"] == "1"
    # The project's default branch is master.
    assert signal.severity is Severity.SEV2
    assert "test/test-build: script_failure" in signal.log_excerpt


def test_a_successful_pipeline_is_a_recovery_with_the_failures_fingerprint() -> None:
    failure = only_signal(load("pipeline.failed.json"), "Pipeline Hook")
    success = only_signal(load("pipeline.success.json"), "Pipeline Hook")
    assert success.kind is SignalKind.CI_RECOVERY
    assert success.fingerprint == failure.fingerprint
    assert success.signal_key == "pipeline:31:success:2016-08-12 15:26:29 UTC"
    assert success.log_excerpt == ""


def test_the_same_pipeline_event_delivered_twice_gives_the_same_signal() -> None:
    assert only_signal(load("pipeline.failed.json"), "Pipeline Hook") == only_signal(
        load("pipeline.failed.json"), "Pipeline Hook"
    )


def test_a_retried_pipeline_failing_again_is_a_new_signal() -> None:
    payload = load("pipeline.failed.json")
    first = only_signal(payload, "Pipeline Hook")
    payload["object_attributes"]["finished_at"] = "2016-08-12 15:40:02 UTC"
    again = only_signal(payload, "Pipeline Hook")
    assert again.signal_key != first.signal_key
    assert again.fingerprint == first.fingerprint


def test_without_its_url_a_pipeline_links_to_the_project_pipelines_page() -> None:
    payload = load("pipeline.failed.json")
    del payload["object_attributes"]["url"]
    signal = only_signal(payload, "Pipeline Hook")
    assert signal.url == "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/30"


def test_an_unnamed_pipeline_is_called_pipeline() -> None:
    payload = load("pipeline.failed.json")
    del payload["object_attributes"]["name"]
    signal = only_signal(payload, "Pipeline Hook")
    assert signal.pipeline == "pipeline"
    assert signal.title == "CI failed: pipeline on gitlab-org/gitlab-test@master"


def test_a_failure_on_another_branch_takes_the_configured_ci_severity() -> None:
    payload = load("pipeline.failed.json")
    payload["object_attributes"]["ref"] = "feature/cart"
    signal = only_signal(payload, "Pipeline Hook")
    assert signal.severity is OPTIONS.default_severity_ci


@pytest.mark.parametrize(
    "status", ["created", "pending", "running", "canceled", "skipped", "manual", "scheduled"]
)
def test_pipelines_that_neither_failed_nor_succeeded_are_ignored(status: str) -> None:
    payload = load("pipeline.failed.json")
    payload["object_attributes"]["status"] = status
    result = normalize(payload, "Pipeline Hook")
    assert result.event_type == "Pipeline Hook"
    assert result.signals == ()
    assert result.ignored is not None
    assert status in result.ignored


def test_a_pipeline_is_recognised_by_its_object_kind_even_from_a_system_hook() -> None:
    result = normalize(load("pipeline.failed.json"), "System Hook")
    assert [s.kind for s in result.signals] == [SignalKind.CI_FAILURE]
    assert result.event_type == "System Hook"


def test_without_the_event_header_the_object_kind_names_the_event() -> None:
    result = normalize(load("pipeline.failed.json"), None)
    assert result.event_type == "pipeline"
    assert len(result.signals) == 1


# --- Job Hook -------------------------------------------------------------------------------


def test_a_failed_job_is_a_job_level_ci_failure() -> None:
    signal = only_signal(load("job.failed.json"), "Job Hook")
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.repo == "gitlab-org/gitlab-test"
    assert signal.branch == "gitlab-script-trigger"
    assert signal.commit_sha == "2293ada6b400935a1378653304eaf6221e0fdb8f"
    assert signal.pipeline == "Build pipeline"
    assert signal.job == "test"
    assert signal.url == "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977"
    assert signal.occurred_at == datetime(2021, 2, 23, 2, 43, 5, tzinfo=UTC)
    assert signal.signal_key == "build:1977:failed"
    assert signal.fingerprint == ci_fingerprint(
        provider="gitlab",
        repo="gitlab-org/gitlab-test",
        pipeline="Build pipeline",
        job="test",
        branch="gitlab-script-trigger",
    )
    assert signal.labels["stage"] == "test"
    assert signal.labels["failure_reason"] == "script_failure"
    assert signal.labels["pipeline_id"] == "2366"
    assert signal.severity is Severity.SEV3


def test_the_successful_retry_of_a_job_recovers_the_same_fingerprint() -> None:
    failure = only_signal(load("job.failed.json"), "Job Hook")
    success = only_signal(load("job.success.json"), "Job Hook")
    assert success.kind is SignalKind.CI_RECOVERY
    assert success.fingerprint == failure.fingerprint
    assert success.signal_key == "build:1978:success"
    assert "failure_reason" not in success.labels


def test_a_job_still_being_created_is_ignored() -> None:
    result = normalize(load("job.created.json"), "Job Hook")
    assert result.event_type == "Job Hook"
    assert result.signals == ()
    assert result.ignored is not None


def test_a_failed_job_that_is_allowed_to_fail_is_ignored() -> None:
    payload = load("job.failed.json")
    payload["build_allow_failure"] = True
    result = normalize(payload, "Job Hook")
    assert result.signals == ()
    assert result.ignored is not None


def test_a_job_in_an_environment_carries_it() -> None:
    payload = load("job.failed.json")
    payload["environment"] = {"name": "staging", "action": "start", "deployment_tier": "staging"}
    assert only_signal(payload, "Job Hook").environment == "staging"


def test_a_job_without_project_takes_its_repo_from_project_name() -> None:
    payload = load("job.failed.json")
    del payload["project"]
    signal = only_signal(payload, "Job Hook")
    assert signal.repo == "gitlab-org/gitlab-test"
    assert signal.url == "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977"


def test_a_job_with_only_gitlab_style_timestamps_is_read() -> None:
    payload = load("job.failed.json")
    payload["build_finished_at_iso"] = None
    payload["build_finished_at"] = "2021-02-23 02:43:05 UTC"
    assert only_signal(payload, "Job Hook").occurred_at == datetime(
        2021, 2, 23, 2, 43, 5, tzinfo=UTC
    )


# --- other hooks ----------------------------------------------------------------------------


def test_a_push_hook_is_ignored_under_its_name() -> None:
    result = normalize(load("push.json"), "Push Hook")
    assert result.event_type == "Push Hook"
    assert result.signals == ()
    assert result.ignored is not None
    assert "Push Hook" in result.ignored


def test_an_unknown_hook_with_an_odd_payload_is_ignored() -> None:
    result = normalize(["not", "an", "object"], "Note Hook")
    assert result.event_type == "Note Hook"
    assert result.ignored is not None


# --- malformed known hooks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "header", "mutate", "field"),
    [
        ("pipeline.failed.json", "Pipeline Hook", lambda p: p.pop("project"), "project"),
        (
            "pipeline.failed.json",
            "Pipeline Hook",
            lambda p: p["project"].pop("path_with_namespace"),
            "project.path_with_namespace",
        ),
        (
            "pipeline.failed.json",
            "Pipeline Hook",
            lambda p: p.pop("object_attributes"),
            "object_attributes",
        ),
        (
            "pipeline.failed.json",
            "Pipeline Hook",
            lambda p: p["object_attributes"].update(status=3),
            "object_attributes.status",
        ),
        (
            "pipeline.failed.json",
            "Pipeline Hook",
            lambda p: p["object_attributes"].update(id=None),
            "object_attributes.id",
        ),
        (
            "pipeline.failed.json",
            "Pipeline Hook",
            lambda p: p["object_attributes"].update(finished_at="the other day"),
            "object_attributes.finished_at",
        ),
        ("job.failed.json", "Job Hook", lambda p: p.pop("build_name"), "build_name"),
        ("job.failed.json", "Job Hook", lambda p: p.update(build_id=[1977]), "build_id"),
        ("job.failed.json", "Job Hook", lambda p: p.update(build_status=None), "build_status"),
        (
            "job.failed.json",
            "Job Hook",
            lambda p: p.update(build_allow_failure="no"),
            "build_allow_failure",
        ),
    ],
)
def test_a_known_hook_missing_a_needed_field_is_payload_invalid_naming_it(
    fixture: str, header: str, mutate: Any, field: str
) -> None:
    payload = load(fixture)
    mutate(payload)
    with pytest.raises(ValidationFailed) as caught:
        normalize(payload, header)
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == field


def test_a_pipeline_hook_whose_payload_is_not_an_object_is_payload_invalid() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize([{"object_kind": "pipeline"}], "Pipeline Hook")
    assert caught.value.details["field"] == "$"
