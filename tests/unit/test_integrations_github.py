"""Specification of the GitHub webhook adapter (dragon.integrations.github).

Payloads are the published examples of @octokit/webhooks-examples (tests/fixtures/github).
"""

from __future__ import annotations

import copy
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
from dragon.integrations import github

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"
OPTIONS = NormalizeOptions()

# GitHub's published test vector ("Validating webhook deliveries").
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def normalize(event: str, payload: Any, options: NormalizeOptions = OPTIONS) -> Normalized:
    return github.normalize(headers={"x-github-event": event}, payload=payload, options=options)


def only_signal(event: str, payload: Any, options: NormalizeOptions = OPTIONS) -> SignalDraft:
    result = normalize(event, payload, options)
    assert result.ignored is None, result.ignored
    assert len(result.signals) == 1
    return result.signals[0]


def refusal_code(headers: dict[str, str], body: bytes, secrets: list[str]) -> str:
    with pytest.raises(Unauthenticated) as caught:
        github.authenticate(headers=headers, body=body, secrets=secrets)
    return caught.value.code


# --- authentication -------------------------------------------------------------------------


def test_the_source_is_github() -> None:
    assert github.SOURCE == "github"


def test_github_documented_signature_test_vector_is_accepted() -> None:
    github.authenticate(
        headers={"x-hub-signature-256": VECTOR_SIGNATURE},
        body=VECTOR_BODY,
        secrets=[VECTOR_SECRET],
    )


def test_a_signature_made_with_the_second_configured_secret_is_accepted_during_rotation() -> None:
    github.authenticate(
        headers={"x-hub-signature-256": VECTOR_SIGNATURE},
        body=VECTOR_BODY,
        secrets=["the-new-secret-not-yet-rolled-out", VECTOR_SECRET],
    )


def test_a_signature_of_a_real_payload_is_accepted() -> None:
    body = (FIXTURES / "workflow_run.completed.failure.json").read_bytes()
    github.authenticate(
        headers={"x-hub-signature-256": sign("s3cret", body)}, body=body, secrets=["s3cret"]
    )


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("missing header", {}),
        ("empty header", {"x-hub-signature-256": ""}),
        ("wrong prefix", {"x-hub-signature-256": "sha1=" + VECTOR_SIGNATURE[7:]}),
        ("no prefix", {"x-hub-signature-256": VECTOR_SIGNATURE[7:]}),
        ("not hex", {"x-hub-signature-256": "sha256=" + "z" * 64}),
        ("truncated", {"x-hub-signature-256": VECTOR_SIGNATURE[:-2]}),
        ("too long", {"x-hub-signature-256": VECTOR_SIGNATURE + "00"}),
        (
            "sha1 header only",
            {
                "x-hub-signature": "sha1="
                + hmac.new(VECTOR_SECRET.encode(), VECTOR_BODY, hashlib.sha1).hexdigest()
            },
        ),
        ("wrong secret", {"x-hub-signature-256": sign("not the secret", VECTOR_BODY)}),
        ("signature of another body", {"x-hub-signature-256": sign(VECTOR_SECRET, b"Hello!")}),
    ],
)
def test_a_delivery_without_a_valid_sha256_signature_is_refused_as_signature_invalid(
    case: str, headers: dict[str, str]
) -> None:
    assert refusal_code(headers, VECTOR_BODY, [VECTOR_SECRET]) == "signature_invalid", case


@pytest.mark.parametrize("secrets", [[], [""]])
def test_with_no_secret_configured_every_delivery_is_refused_even_a_signed_one(
    secrets: list[str],
) -> None:
    headers = {"x-hub-signature-256": sign("", VECTOR_BODY)}
    assert refusal_code(headers, VECTOR_BODY, secrets) == "webhook_secret_missing"


def test_a_refusal_message_never_contains_the_secret_or_the_presented_signature() -> None:
    presented = sign("guess", VECTOR_BODY)
    with pytest.raises(Unauthenticated) as caught:
        github.authenticate(
            headers={"x-hub-signature-256": presented}, body=VECTOR_BODY, secrets=[VECTOR_SECRET]
        )
    text = f"{caught.value} {caught.value.details}"
    assert VECTOR_SECRET not in text
    assert presented[7:] not in text


# --- delivery key ---------------------------------------------------------------------------


def test_the_delivery_key_is_the_x_github_delivery_header() -> None:
    key = github.delivery_key(
        headers={"x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
        payload=load("push.json"),
        body=b"{}",
    )
    assert key == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.mark.parametrize("headers", [{}, {"x-github-delivery": ""}, {"x-github-delivery": "  "}])
def test_a_delivery_without_x_github_delivery_has_no_key(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        github.delivery_key(headers=headers, payload={}, body=b"{}")
    assert caught.value.code == "delivery_key_missing"


# --- workflow_run ---------------------------------------------------------------------------


def test_a_failed_workflow_run_is_a_ci_failure_with_the_run_facts() -> None:
    signal = only_signal("workflow_run", load("workflow_run.completed.failure.json"))
    assert signal.source == "github"
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.repo == "octo-org/octo-repo"
    assert signal.branch == "master"
    assert signal.commit_sha == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    # The run's `name` is empty in this example: the workflow's name stands in.
    assert signal.pipeline == "test"
    assert signal.job is None
    assert signal.url == "https://github.com/octo-org/octo-repo/actions/runs/289782451"
    assert signal.occurred_at == datetime(2020, 10, 5, 16, 33, 49, tzinfo=UTC)
    assert signal.signal_key == "workflow_run:289782451:1:failure"
    assert signal.fingerprint == ci_fingerprint(
        provider="github", repo="octo-org/octo-repo", pipeline="test", job=None, branch="master"
    )
    assert signal.title == "CI failed: test on octo-org/octo-repo@master"
    assert signal.labels["run_id"] == "289782451"
    assert signal.labels["conclusion"] == "failure"


def test_a_failure_on_the_default_branch_is_sev2() -> None:
    signal = only_signal("workflow_run", load("workflow_run.completed.failure.json"))
    assert signal.severity is Severity.SEV2


def test_a_failure_on_another_branch_takes_the_configured_ci_severity() -> None:
    payload = load("workflow_run.completed.failure.json")
    payload["workflow_run"]["head_branch"] = "feature/login"
    signal = only_signal(
        "workflow_run", payload, NormalizeOptions(default_severity_ci=Severity.SEV4)
    )
    assert signal.severity is Severity.SEV4


def test_a_successful_workflow_run_is_a_recovery_with_the_failures_fingerprint() -> None:
    failure = only_signal("workflow_run", load("workflow_run.completed.failure.json"))
    success = only_signal("workflow_run", load("workflow_run.completed.success.json"))
    assert success.kind is SignalKind.CI_RECOVERY
    assert success.fingerprint == failure.fingerprint
    assert success.signal_key != failure.signal_key
    assert success.title == "CI recovered: test on octo-org/octo-repo@master"


def test_the_same_workflow_run_delivered_twice_gives_the_same_signal_key() -> None:
    first = only_signal("workflow_run", load("workflow_run.completed.failure.json"))
    again = only_signal("workflow_run", load("workflow_run.completed.failure.json"))
    assert first == again


def test_a_rerun_attempt_is_a_new_signal_with_the_same_fingerprint() -> None:
    payload = load("workflow_run.completed.failure.json")
    first = only_signal("workflow_run", payload)
    rerun = copy.deepcopy(payload)
    rerun["workflow_run"]["run_attempt"] = 2
    second = only_signal("workflow_run", rerun)
    assert second.signal_key == "workflow_run:289782451:2:failure"
    assert second.fingerprint == first.fingerprint


@pytest.mark.parametrize("conclusion", ["timed_out", "startup_failure"])
def test_timed_out_and_startup_failure_runs_are_failures(conclusion: str) -> None:
    payload = load("workflow_run.completed.failure.json")
    payload["workflow_run"]["conclusion"] = conclusion
    signal = only_signal("workflow_run", payload)
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.signal_key == f"workflow_run:289782451:1:{conclusion}"


@pytest.mark.parametrize(
    "conclusion", ["cancelled", "skipped", "neutral", "action_required", "stale"]
)
def test_runs_that_neither_failed_nor_succeeded_are_ignored(conclusion: str) -> None:
    payload = load("workflow_run.completed.failure.json")
    payload["workflow_run"]["conclusion"] = conclusion
    result = normalize("workflow_run", payload)
    assert result.signals == ()
    assert result.event_type == "workflow_run"
    assert result.ignored is not None
    assert conclusion in result.ignored


def test_a_completed_run_without_a_conclusion_is_ignored() -> None:
    result = normalize("workflow_run", load("workflow_run.completed.no_conclusion.json"))
    assert result.signals == ()
    assert result.ignored is not None


def test_a_requested_run_is_ignored() -> None:
    payload = load("workflow_run.completed.failure.json")
    payload["action"] = "requested"
    result = normalize("workflow_run", payload)
    assert result.signals == ()
    assert result.ignored is not None
    assert "requested" in result.ignored


def test_a_very_long_workflow_name_gives_a_title_of_300_characters() -> None:
    payload = load("workflow_run.completed.failure.json")
    payload["workflow_run"]["name"] = "w" * 500
    signal = only_signal("workflow_run", payload)
    assert len(signal.title) == 300
    # Cut to what a signal keeps (200), grouped by the whole name all the same.
    assert signal.pipeline == "w" * 200
    shorter = copy.deepcopy(payload)
    shorter["workflow_run"]["name"] = "w" * 200
    assert only_signal("workflow_run", shorter).fingerprint != signal.fingerprint


# --- workflow_job ---------------------------------------------------------------------------


def test_a_failed_workflow_job_is_a_job_level_ci_failure() -> None:
    signal = only_signal("workflow_job", load("workflow_job.completed.failure.json"))
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.repo == "Codertocat/Hello-World"
    assert signal.branch == "main"
    assert signal.commit_sha == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert signal.pipeline == "CodeQL"
    assert signal.job == "linters"
    assert signal.url == "https://github.com/octo-org/octo-repo/runs/1291536064"
    assert signal.occurred_at == datetime(2021, 8, 5, 10, 38, 16, tzinfo=UTC)
    assert signal.signal_key == "workflow_job:289782451:1:failure"
    assert signal.fingerprint == ci_fingerprint(
        provider="github",
        repo="Codertocat/Hello-World",
        pipeline="CodeQL",
        job="linters",
        branch="main",
    )
    assert signal.title == "CI failed: CodeQL / linters on Codertocat/Hello-World@main"
    assert signal.labels["failed_step"] == "Run yarn run format-check"
    assert signal.labels["run_id"] == "2202229078"
    # `main` is not this repository's default branch (`master`).
    assert signal.severity is Severity.SEV3


def test_a_successful_workflow_job_recovers_the_same_fingerprint() -> None:
    failure = only_signal("workflow_job", load("workflow_job.completed.failure.json"))
    success = only_signal("workflow_job", load("workflow_job.completed.success.json"))
    assert success.kind is SignalKind.CI_RECOVERY
    assert success.fingerprint == failure.fingerprint
    assert success.signal_key == "workflow_job:289782451:1:success"
    assert "failed_step" not in success.labels


def test_a_job_and_its_run_are_grouped_apart() -> None:
    run = only_signal("workflow_run", load("workflow_run.completed.failure.json"))
    job = only_signal("workflow_job", load("workflow_job.completed.failure.json"))
    assert run.fingerprint != job.fingerprint


def test_a_workflow_job_in_progress_is_ignored() -> None:
    result = normalize("workflow_job", load("workflow_job.in_progress.json"))
    assert result.signals == ()
    assert result.ignored is not None


# --- check_run and check_suite --------------------------------------------------------------


def test_a_failed_check_run_is_a_ci_failure_named_after_the_check() -> None:
    signal = only_signal("check_run", load("check_run.completed.failure.json"))
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.repo == "Codertocat/Hello-World"
    assert signal.branch == "changes"
    assert signal.commit_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert signal.pipeline == "Octocoders-linter"
    assert signal.job is None
    assert signal.url == "https://github.com/Codertocat/Hello-World/runs/128620228"
    assert signal.occurred_at == datetime(2019, 5, 15, 15, 21, 12, tzinfo=UTC)
    assert signal.signal_key == "check_run:128620228:failure"
    assert signal.fingerprint == ci_fingerprint(
        provider="github",
        repo="Codertocat/Hello-World",
        pipeline="Octocoders-linter",
        job=None,
        branch="changes",
    )


def test_a_successful_check_run_recovers_the_same_fingerprint() -> None:
    failure = only_signal("check_run", load("check_run.completed.failure.json"))
    success = only_signal("check_run", load("check_run.completed.success.json"))
    assert success.kind is SignalKind.CI_RECOVERY
    assert success.fingerprint == failure.fingerprint
    assert success.signal_key == "check_run:128620228:success"


def test_check_runs_of_github_actions_are_ignored_because_workflow_job_reports_them() -> None:
    result = normalize("check_run", load("check_run.completed.github_actions.json"))
    assert result.signals == ()
    assert result.ignored is not None


def test_a_rerequested_check_run_is_ignored() -> None:
    result = normalize("check_run", load("check_run.rerequested.neutral.json"))
    assert result.signals == ()
    assert result.ignored is not None


def test_a_failed_check_suite_is_a_ci_failure_named_after_the_app() -> None:
    signal = only_signal("check_suite", load("check_suite.completed.failure.json"))
    assert signal.kind is SignalKind.CI_FAILURE
    assert signal.repo == "Codertocat/Hello-World"
    assert signal.branch == "changes"
    assert signal.commit_sha == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert signal.pipeline == "octocoders-linter"
    assert signal.job is None
    assert signal.url == (
        "https://github.com/Codertocat/Hello-World/commit/"
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821/checks?check_suite_id=118578147"
    )
    assert signal.signal_key == "check_suite:118578147:failure:2019-05-15T15:21:14Z"
    assert signal.fingerprint == ci_fingerprint(
        provider="github",
        repo="Codertocat/Hello-World",
        pipeline="octocoders-linter",
        job=None,
        branch="changes",
    )


def test_a_successful_check_suite_recovers_the_same_fingerprint() -> None:
    failure = only_signal("check_suite", load("check_suite.completed.failure.json"))
    success = only_signal("check_suite", load("check_suite.completed.success.json"))
    assert success.kind is SignalKind.CI_RECOVERY
    assert success.fingerprint == failure.fingerprint
    assert success.signal_key != failure.signal_key


def test_check_suites_of_github_actions_are_ignored_because_workflow_run_reports_them() -> None:
    result = normalize("check_suite", load("check_suite.completed.github_actions.json"))
    assert result.signals == ()
    assert result.ignored is not None


# --- other events ---------------------------------------------------------------------------


def test_ping_is_ignored_as_ping() -> None:
    assert normalize("ping", load("ping.json")) == Normalized(event_type="ping", ignored="ping")


@pytest.mark.parametrize(
    ("event", "fixture"), [("issues", "issues.opened.json"), ("push", "push.json")]
)
def test_events_other_than_ci_are_ignored_under_their_own_name(event: str, fixture: str) -> None:
    result = normalize(event, load(fixture))
    assert result.event_type == event
    assert result.signals == ()
    assert result.ignored is not None
    assert event in result.ignored


def test_an_unknown_event_is_ignored_whatever_its_payload_looks_like() -> None:
    result = normalize("star", ["not", "an", "object"])
    assert result.event_type == "star"
    assert result.ignored is not None


def test_a_delivery_without_an_event_header_is_ignored() -> None:
    result = github.normalize(
        headers={}, payload=load("workflow_run.completed.failure.json"), options=OPTIONS
    )
    assert result.signals == ()
    assert result.ignored is not None


# --- malformed known events -----------------------------------------------------------------


def _break(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    target = payload
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return payload


_DELETE = object()


@pytest.mark.parametrize(
    ("event", "fixture", "path", "value"),
    [
        ("workflow_run", "workflow_run.completed.failure.json", "repository.full_name", _DELETE),
        ("workflow_run", "workflow_run.completed.failure.json", "repository", "octo-org/octo-repo"),
        ("workflow_run", "workflow_run.completed.failure.json", "workflow_run.id", {"n": 1}),
        ("workflow_run", "workflow_run.completed.failure.json", "workflow_run.id", _DELETE),
        ("workflow_run", "workflow_run.completed.failure.json", "workflow_run.updated_at", "soon"),
        ("workflow_run", "workflow_run.completed.failure.json", "workflow_run.conclusion", 1),
        ("workflow_run", "workflow_run.completed.failure.json", "workflow_run.head_branch", 7),
        ("workflow_run", "workflow_run.completed.failure.json", "workflow_run.run_attempt", "2"),
        ("workflow_job", "workflow_job.completed.failure.json", "workflow_job.name", _DELETE),
        ("workflow_job", "workflow_job.completed.failure.json", "workflow_job.completed_at", None),
        ("check_run", "check_run.completed.failure.json", "check_run.name", ["lint"]),
        ("check_suite", "check_suite.completed.failure.json", "check_suite.updated_at", _DELETE),
    ],
)
def test_a_known_event_missing_a_needed_field_is_payload_invalid_naming_it(
    event: str, fixture: str, path: str, value: Any
) -> None:
    payload = _break(load(fixture), path, value)
    with pytest.raises(ValidationFailed) as caught:
        normalize(event, payload)
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == path


def test_a_known_event_whose_object_is_not_an_object_is_payload_invalid() -> None:
    payload = load("workflow_run.completed.failure.json")
    payload["workflow_run"] = "289782451"
    with pytest.raises(ValidationFailed) as caught:
        normalize("workflow_run", payload)
    assert caught.value.details["field"] == "workflow_run"


def test_a_known_event_whose_payload_is_not_an_object_is_payload_invalid() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalize("workflow_run", [1, 2, 3])
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == "$"
