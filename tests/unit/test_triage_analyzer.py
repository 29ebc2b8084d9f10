"""Specification of the built-in analyzer (dragon.domain.triage) on the labelled corpus of real
CI logs in tests/fixtures/ci_logs, and of its action rules and risk factors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragon.domain.actions import CATALOG
from dragon.domain.failure_rules import FailureClass
from dragon.domain.risk import assess, triage_factors
from dragon.domain.triage import TriageContext, analyze, classify, log_lines, propose, redact

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "ci_logs"
LOGS = sorted(CORPUS.glob("*/*.log"))


def test_the_corpus_has_at_least_five_real_logs_per_class() -> None:
    per_class = {cls.value: 0 for cls in FailureClass}
    for path in LOGS:
        per_class[path.parent.name] += 1
    assert all(count >= 5 for count in per_class.values()), per_class


@pytest.mark.parametrize("failure_class", [cls.value for cls in FailureClass])
def test_each_class_is_recognised_on_at_least_three_quarters_of_its_logs(
    failure_class: str,
) -> None:
    logs = [p for p in LOGS if p.parent.name == failure_class]
    wrong = [
        (p.name, got.failure_class.value)
        for p in logs
        if (got := classify(p.read_text())).failure_class.value != failure_class
    ]
    assert len(wrong) <= len(logs) // 4, wrong


def test_evidence_lines_are_lines_of_the_log_matched_by_the_winning_class() -> None:
    for path in LOGS:
        text = path.read_text()
        lines = log_lines(text)
        got = classify(text)
        for evidence in got.evidence:
            assert lines[evidence.line - 1].strip().startswith(evidence.text[:50])
            assert evidence.rule.startswith(got.failure_class.value + ".")


def test_a_log_with_nothing_recognisable_is_unknown_with_low_confidence() -> None:
    got = classify("step 1 done\nstep 2 done\n")
    assert got.failure_class is FailureClass.UNKNOWN
    assert got.evidence == ()
    assert got.confidence < 0.5


def test_classification_is_deterministic_and_ignores_runner_timestamps() -> None:
    plain = "ERROR: No matching distribution found for acme==9\n"
    stamped = "2026-11-30T09:00:00.1234567Z " + plain
    assert classify(plain) == classify(stamped)
    assert classify(plain).failure_class is FailureClass.DEPENDENCY_RESOLUTION


def test_a_stronger_lead_gives_more_confidence() -> None:
    one = classify("curl: (7) Failed to connect to 127.0.0.1 port 1: Connection refused")
    mixed = classify(
        "curl: (7) Failed to connect: Connection refused\nFAILED tests/test_a.py::test_x - boom"
    )
    assert one.failure_class is mixed.failure_class is FailureClass.FLAKY_INFRASTRUCTURE
    assert one.confidence > mixed.confidence


def _proposal(text: str, **context: object) -> str:
    return propose(TriageContext(**context), classify(text)).action  # type: ignore[arg-type]


def test_action_rules_follow_the_failure_class() -> None:
    lint = (CORPUS / "lint_format" / "ruff_unused_import.log").read_text()
    flaky = (CORPUS / "flaky_infrastructure" / "dns_failure.log").read_text()
    tests = (CORPUS / "test_failure" / "pytest_assertion.log").read_text()
    secret = (CORPUS / "missing_permission" / "bash_unset_secret.log").read_text()
    config = (CORPUS / "configuration_error" / "yaml_tab.log").read_text()
    ci = {"source": "github", "kind": "ci_failure", "repo": "acme/app"}
    assert _proposal(lint, **ci, branch="feature/x") == "autofix_pull_request"
    assert _proposal(flaky, **ci, branch="main") == "rerun_failed_jobs"
    assert _proposal(tests, **ci, branch="main", commit_sha="9f2c1e7") == "revert_pull_request"
    # Not the first failure, or not on the default branch: the owners decide.
    assert _proposal(tests, **ci, branch="main", commit_sha="9f2c1e7", signal_count=2) == (
        "notify_owners"
    )
    assert _proposal(tests, **ci, branch="feature/x", commit_sha="9f2c1e7") == "notify_owners"
    assert _proposal(secret, **ci) == "notify_owners"
    assert _proposal(config, **ci) == "notify_owners"


def test_alerts_run_their_mapped_runbook_or_escalate() -> None:
    alert = {"source": "alertmanager", "kind": "alert_firing"}
    labelled = TriageContext(**alert, labels={"alertname": "DiskFull", "runbook": "clean-disk"})
    mapped = TriageContext(
        **alert, labels={"alertname": "HighLatency"}, runbooks={"HighLatency": "scale-web"}
    )
    unmapped = TriageContext(**alert, labels={"alertname": "Mystery"})
    text = classify("disk usage above 95%")
    assert propose(labelled, text).params["runbook"] == "clean-disk"
    assert propose(mapped, text).action == "run_runbook"
    assert propose(mapped, text).params["runbook"] == "scale-web"
    assert propose(unmapped, text).action == "escalate"


def test_every_proposal_names_a_catalog_action_and_permissions_never_act_on_their_own() -> None:
    for path in LOGS:
        got = classify(path.read_text())
        proposal = propose(TriageContext(source="gitlab", branch="main", commit_sha="abc"), got)
        assert proposal.action in CATALOG
        if got.failure_class in (FailureClass.MISSING_PERMISSION, FailureClass.CONFIGURATION_ERROR):
            assert proposal.action == "notify_owners"
            assert not proposal.automatic


def test_triage_risk_factors_are_named_weighted_and_explained() -> None:
    factors = triage_factors(
        action="revert_pull_request", confidence=0.5, signal_count=4, change_freeze=True
    )
    named = {f.name: f.weight for f in factors}
    assert named == {
        "analyzer_confidence": 10,
        "repeated_failures": 10,
        "change_size": 5,
        "change_freeze": 30,
    }
    assert all(f.detail for f in factors)
    risk = assess(
        action=CATALOG["revert_pull_request"],
        branch="main",
        environment="production",
        extra=factors,
    )
    assert risk.score == 100  # 35 + 15 + 25 + 55, capped
    assert [f.name for f in risk.factors][:3] == [
        "action_base",
        "protected_branch",
        "production_environment",
    ]


def test_a_confident_rerun_on_a_feature_branch_stays_low_risk() -> None:
    factors = triage_factors(action="rerun_failed_jobs", confidence=0.95)
    risk = assess(action=CATALOG["rerun_failed_jobs"], branch="feature/x", extra=factors)
    assert risk.score == 11
    assert risk.level.value == "low"


def test_the_size_of_a_known_change_scales_its_weight() -> None:
    small = triage_factors(action="autofix_pull_request", confidence=None, files_touched=1)
    large = triage_factors(action="autofix_pull_request", confidence=None, files_touched=60)
    assert small[0].weight < large[0].weight == 20


@pytest.mark.parametrize(
    "line",
    [
        "curl -H 'Authorization: Bearer abcdefghijklmnop1234' https://x",
        "export GITHUB_TOKEN=ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
        "password: hunter2hunter2",
        "aws key AKIAABCDEFGHIJKLMNOP in env",
        "git clone https://ci-bot:s3cr3tvalue@git.example.com/acme/app.git",
        "slack xoxb-123456789012-abcdefghij",
    ],
)
def test_credentials_in_evidence_lines_are_redacted(line: str) -> None:
    cleaned = redact(line)
    assert "[REDACTED]" in cleaned
    for secret in ("abcdefghijklmnop1234", "ghp_A1b2", "hunter2", "AKIAABCD", "s3cr3t", "xoxb-1"):
        assert secret not in cleaned


def test_evidence_of_a_log_with_a_token_is_redacted_by_the_analyzer() -> None:
    text = "SECRET_TOKEN=abcd1234efgh5678 is not set\nError: DEPLOY_TOKEN is not set\n"
    found = analyze(text, TriageContext()).classification
    assert found.failure_class is FailureClass.MISSING_PERMISSION
    assert all("abcd1234efgh5678" not in e.text for e in found.evidence)
