"""Specification of the policy engine: the default policy, matching, versions and validation."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragon.domain.actions import CATALOG
from dragon.domain.default_policy import DEFAULT_POLICY_TEXT
from dragon.domain.enums import RiskLevel, Role
from dragon.domain.errors import PolicyInvalid, PolicyProblem
from dragon.domain.policy import (
    DecisionFacts,
    Effect,
    Policy,
    Rule,
    RuleMatch,
    default_policy,
    evaluate,
    parse_policy,
)

PROTECTED_BRANCHES = [
    "main",
    "master",
    "trunk",
    "production",
    "release/1.4",
    "releases/2024-06",
    "hotfix/login",
]


# A low-risk, non-destructive decision with no repo, branch, environment or source.
LOW_RISK_RERUN = DecisionFacts(
    action="rerun_job", destructive=False, risk_score=10, risk_level=RiskLevel.LOW
)


def facts(**changes: Any) -> DecisionFacts:
    return replace(LOW_RISK_RERUN, **changes)


def policy_with_rules(rules: str, *, default: str = "effect: require_approval") -> Policy:
    """Parse a policy whose `rules:` block is `rules` (already indented by two spaces)."""
    return parse_policy(f"version: 1\nname: test\nrules:\n{rules}default:\n  {default}\n")


def problems_in(text: str) -> list[PolicyProblem]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text)
    return caught.value.problems


def located(problems: list[PolicyProblem]) -> list[tuple[int | None, str]]:
    return [(problem.line, problem.path) for problem in problems]


# The default policy


@pytest.mark.parametrize("branch", PROTECTED_BRANCHES)
def test_destructive_action_on_protected_branch_is_denied_by_default_policy(branch: str) -> None:
    verdict = evaluate(
        default_policy(),
        facts(action="revert_commit", destructive=True, branch=branch, risk_level=RiskLevel.LOW),
    )

    assert verdict.effect is Effect.DENY
    assert verdict.rule_id == "deny-destructive-on-protected-branches"
    assert verdict.approvals_required == 0
    assert verdict.approver_roles == ()
    assert verdict.expires_in is None
    assert "protected branches are denied" in verdict.reason


def test_destructive_action_on_protected_branch_is_denied_even_in_production() -> None:
    verdict = evaluate(
        default_policy(),
        facts(destructive=True, branch="main", environment="production"),
    )

    assert verdict.rule_id == "deny-destructive-on-protected-branches"


@pytest.mark.parametrize("branch", ["feature/login", "mainline", "release", "Main", None])
def test_destructive_action_off_protected_branches_falls_through_to_risk_rules(
    branch: str | None,
) -> None:
    verdict = evaluate(
        default_policy(),
        facts(destructive=True, branch=branch, risk_level=RiskLevel.HIGH, risk_score=65),
    )

    assert verdict.rule_id == "high-risk-requires-approval"
    assert verdict.effect is Effect.REQUIRE_APPROVAL


def test_non_destructive_action_on_protected_branch_is_not_denied_by_default_policy() -> None:
    verdict = evaluate(default_policy(), facts(action="open_revert_pr", branch="main"))

    assert verdict.effect is Effect.AUTO_APPROVE
    assert verdict.rule_id == "low-risk-auto-approves"


@pytest.mark.parametrize("environment", ["production", "Production", "PROD", "prod"])
def test_production_environment_requires_two_approvers_by_default_policy(environment: str) -> None:
    verdict = evaluate(default_policy(), facts(environment=environment, risk_level=RiskLevel.LOW))

    assert verdict.effect is Effect.REQUIRE_APPROVAL
    assert verdict.rule_id == "production-requires-two-approvers"
    assert verdict.approvals_required == 2
    assert verdict.approver_roles == (Role.APPROVER, Role.ADMIN)
    assert verdict.expires_in == timedelta(hours=24)


def test_staging_environment_is_not_treated_as_production_by_default_policy() -> None:
    verdict = evaluate(default_policy(), facts(environment="staging"))

    assert verdict.rule_id == "low-risk-auto-approves"


@pytest.mark.parametrize(
    ("level", "rule_id", "approvals"),
    [
        (RiskLevel.CRITICAL, "critical-risk-requires-two-approvals", 2),
        (RiskLevel.HIGH, "high-risk-requires-approval", 1),
        (RiskLevel.MEDIUM, "medium-risk-requires-approval", 1),
    ],
)
def test_risk_level_sets_the_number_of_approvals_in_default_policy(
    level: RiskLevel, rule_id: str, approvals: int
) -> None:
    verdict = evaluate(default_policy(), facts(risk_level=level))

    assert verdict.effect is Effect.REQUIRE_APPROVAL
    assert verdict.rule_id == rule_id
    assert verdict.approvals_required == approvals
    assert verdict.approver_roles == (Role.APPROVER,)
    assert verdict.expires_in == timedelta(hours=24)


def test_low_risk_is_auto_approved_by_default_policy() -> None:
    verdict = evaluate(default_policy(), facts(risk_level=RiskLevel.LOW))

    assert verdict.effect is Effect.AUTO_APPROVE
    assert verdict.rule_id == "low-risk-auto-approves"
    assert verdict.approvals_required == 0
    assert verdict.approver_roles == ()
    assert verdict.expires_in is None


def test_default_policy_rules_are_in_the_documented_order() -> None:
    assert [rule.id for rule in default_policy().rules] == [
        "deny-destructive-on-protected-branches",
        "production-requires-two-approvers",
        "critical-risk-requires-two-approvals",
        "high-risk-requires-approval",
        "medium-risk-requires-approval",
        "low-risk-auto-approves",
        "default",
    ]


def test_default_policy_falls_back_to_one_approval_within_24_hours() -> None:
    fallback = default_policy().rules[-1]

    assert fallback.effect is Effect.REQUIRE_APPROVAL
    assert fallback.approvals == 1
    assert fallback.roles == (Role.APPROVER,)
    assert fallback.expires_in == timedelta(hours=24)
    assert fallback.match == RuleMatch()


def test_default_policy_is_parsed_once_and_records_its_source() -> None:
    assert default_policy() is default_policy()
    assert default_policy().source == DEFAULT_POLICY_TEXT
    assert default_policy().name == "default"


# Matching


def test_first_matching_rule_wins_over_later_matching_rules() -> None:
    policy = policy_with_rules(
        "  - id: first\n"
        "    match: {action: rerun_job}\n"
        "    effect: auto_approve\n"
        "  - id: second\n"
        "    match: {action: rerun_job}\n"
        "    effect: deny\n"
    )

    assert evaluate(policy, facts(action="rerun_job")).rule_id == "first"


def test_decision_no_rule_matches_gets_the_default_rule() -> None:
    policy = policy_with_rules(
        "  - id: only-comments\n    match: {action: comment}\n    effect: auto_approve\n",
        default="{effect: deny, reason: nothing else applies}",
    )

    verdict = evaluate(policy, facts(action="rerun_job"))

    assert verdict.rule_id == "default"
    assert verdict.effect is Effect.DENY
    assert verdict.reason == "nothing else applies"
    assert verdict.policy_version == policy.version


def test_rule_with_empty_match_matches_every_decision() -> None:
    policy = policy_with_rules("  - id: everything\n    match: {}\n    effect: deny\n")

    assert evaluate(policy, facts(risk_level=RiskLevel.CRITICAL)).rule_id == "everything"


@pytest.mark.parametrize(
    ("repo", "rule_id"),
    [
        ("acme/api", "acme"),
        ("acme/infra/deploy", "acme"),
        ("ACME/api", "default"),
        ("other/acme", "default"),
        ("tools/cli-7", "tools"),
        ("tools/cli-x", "default"),
    ],
)
def test_repo_condition_is_a_case_sensitive_glob(repo: str, rule_id: str) -> None:
    policy = policy_with_rules(
        "  - id: acme\n"
        '    match: {repo: "acme/*"}\n'
        "    effect: deny\n"
        "  - id: tools\n"
        '    match: {repo: ["nothing/*", "tools/cli-[0-9]"]}\n'
        "    effect: deny\n"
    )

    assert evaluate(policy, facts(repo=repo)).rule_id == rule_id


@pytest.mark.parametrize("condition", ["repo: '*'", "branch: '*'", "environment: staging"])
def test_condition_on_an_absent_fact_never_matches(condition: str) -> None:
    policy = policy_with_rules(f"  - id: given\n    match: {{{condition}}}\n    effect: deny\n")

    assert evaluate(policy, facts()).rule_id == "default"


def test_source_condition_on_an_absent_source_never_matches() -> None:
    policy = policy_with_rules(
        "  - id: ci\n    match: {source: [github, gitlab]}\n    effect: deny\n"
    )

    assert evaluate(policy, facts(source=None)).rule_id == "default"
    assert evaluate(policy, facts(source="gitlab")).rule_id == "ci"
    assert evaluate(policy, facts(source="jenkins")).rule_id == "default"


def test_all_conditions_of_a_match_must_hold() -> None:
    policy = policy_with_rules(
        "  - id: both\n"
        "    match: {action: [revert_commit, rollback_deployment], risk_level: [high, critical]}\n"
        "    effect: deny\n"
    )

    assert evaluate(policy, facts(action="revert_commit", risk_level=RiskLevel.HIGH)).rule_id == (
        "both"
    )
    assert evaluate(policy, facts(action="revert_commit", risk_level=RiskLevel.LOW)).rule_id == (
        "default"
    )
    assert evaluate(policy, facts(action="rerun_job", risk_level=RiskLevel.HIGH)).rule_id == (
        "default"
    )


@pytest.mark.parametrize(("score", "rule_id"), [(39, "default"), (40, "band"), (60, "band")])
def test_risk_score_bounds_are_inclusive(score: int, rule_id: str) -> None:
    policy = policy_with_rules(
        "  - id: band\n    match: {risk_score: {min: 40, max: 60}}\n    effect: deny\n"
    )

    assert evaluate(policy, facts(risk_score=score)).rule_id == rule_id
    assert evaluate(policy, facts(risk_score=61)).rule_id == "default"


def test_destructive_false_matches_only_non_destructive_actions() -> None:
    policy = policy_with_rules("  - id: safe\n    match: {destructive: false}\n    effect: deny\n")

    assert evaluate(policy, facts(destructive=False)).rule_id == "safe"
    assert evaluate(policy, facts(destructive=True)).rule_id == "default"


def test_require_approval_rule_carries_its_approvals_roles_and_expiry() -> None:
    policy = parse_policy(
        dedent(
            """\
            version: 1
            name: strict
            defaults:
              expires_in: 90m
            rules:
              - id: admins-only
                match: {action: rollback_deployment}
                effect: require_approval
                approvals: 3
                roles: admin
                expires_in: 2d
            default:
              effect: require_approval
            """
        )
    )

    ruled = evaluate(policy, facts(action="rollback_deployment"))
    fallback = evaluate(policy, facts())

    assert (ruled.approvals_required, ruled.approver_roles, ruled.expires_in) == (
        3,
        (Role.ADMIN,),
        timedelta(days=2),
    )
    assert (fallback.approvals_required, fallback.approver_roles, fallback.expires_in) == (
        1,
        (Role.APPROVER,),
        timedelta(minutes=90),
    )


def test_policy_must_end_with_a_default_rule_that_matches_everything() -> None:
    scoped = Rule(id="scoped", effect=Effect.DENY, match=RuleMatch(actions=("comment",)))

    with pytest.raises(ValueError, match="default rule"):
        Policy(name="broken", rules=(scoped,), version="sha256:x", source="")


# Versions


def test_policy_version_is_the_sha256_of_its_exact_text() -> None:
    text = "version: 1\nname: v\ndefault: {effect: deny}\n"

    policy = parse_policy(text)

    assert policy.version == "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert policy.source == text


def test_policy_version_changes_when_only_a_comment_changes() -> None:
    text = "version: 1\nname: v\ndefault: {effect: deny}\n"

    assert parse_policy(text).version != parse_policy(text + "# reviewed\n").version
    assert parse_policy(text).version == parse_policy(text).version


# Validation


def test_invalid_yaml_is_reported_at_the_line_of_the_syntax_error() -> None:
    problems = problems_in("version: 1\nname: x\nrules: [\n  {id: a, effect: deny\ndefault: {}\n")

    assert len(problems) == 1
    assert problems[0].line == 5
    assert problems[0].message.startswith("not valid YAML:")


@pytest.mark.parametrize(
    ("text", "described"), [("- a\n- b\n", "a list"), ("just words\n", "text"), ("", "empty")]
)
def test_policy_whose_top_level_is_not_a_mapping_is_rejected(text: str, described: str) -> None:
    problems = problems_in(text)

    assert len(problems) == 1
    assert problems[0].message.startswith("expected a mapping")
    assert described in problems[0].message


def test_misspelt_key_is_reported_with_the_closest_known_key() -> None:
    problems = problems_in(
        dedent(
            """\
            version: 1
            name: typo
            rules:
              - id: a
                efect: deny
            default:
              effect: deny
            """
        )
    )

    assert located(problems) == [(4, "rules[0]"), (5, "rules[0].efect")]
    assert problems[0].message == "missing required key 'effect'"
    assert problems[1].message == "unknown key 'efect'; did you mean 'effect'?"


def test_unknown_key_far_from_any_known_key_gets_no_suggestion() -> None:
    problems = problems_in("version: 1\nname: x\nowner: platform\ndefault: {effect: deny}\n")

    assert located(problems) == [(3, "owner")]
    assert problems[0].message == "unknown key 'owner'"


def test_missing_default_and_name_are_reported_at_the_top_mapping() -> None:
    problems = problems_in("# a policy\nversion: 1\nrules: []\n")

    assert located(problems) == [(2, ""), (2, "")]
    assert [p.message for p in problems] == [
        "missing required key 'name'",
        "missing required key 'default'",
    ]


def test_unsupported_format_version_is_rejected() -> None:
    problems = problems_in("name: x\nversion: 2\ndefault: {effect: deny}\n")

    assert located(problems) == [(2, "version")]
    assert problems[0].message == "format version must be 1, got an integer (2)"


def test_values_of_the_wrong_type_are_rejected() -> None:
    problems = problems_in(
        dedent(
            """\
            version: 1
            name: types
            rules:
              - id: a
                match:
                  destructive: sometimes
                  branch: 2024
                effect: require_approval
                approvals: two
            default: deny
            """
        )
    )

    assert located(problems) == [
        (6, "rules[0].match.destructive"),
        (7, "rules[0].match.branch"),
        (9, "rules[0].approvals"),
        (10, "default"),
    ]
    assert problems[0].message == "expected true or false, got text (sometimes)"
    assert problems[1].message == "expected non-empty text, got an integer (2024); put it in quotes"
    assert problems[2].message == "expected an integer, got text (two)"
    assert problems[3].message == "expected a mapping, got text (deny)"


def test_unknown_action_is_reported_with_a_suggestion() -> None:
    problems = problems_in(
        dedent(
            """\
            version: 1
            name: actions
            rules:
              - id: a
                match:
                  action:
                    - rerun_job
                    - revert_comit
                effect: deny
            default: {effect: deny}
            """
        )
    )

    assert located(problems) == [(8, "rules[0].match.action[1]")]
    assert problems[0].message.startswith(
        "unknown action 'revert_comit'; did you mean 'revert_commit'?"
    )


@pytest.mark.parametrize(
    ("field", "value", "path", "message"),
    [
        ("match", "{risk_level: severe}", "rules[0].match.risk_level", "unknown risk level"),
        ("match", "{source: bitbucket}", "rules[0].match.source", "unknown source"),
        ("effect", "allow", "rules[0].effect", "unknown effect 'allow'"),
    ],
)
def test_unknown_vocabulary_words_are_rejected(
    field: str, value: str, path: str, message: str
) -> None:
    effect = "" if field == "effect" else "    effect: deny\n"
    problems = problems_in(
        f"version: 1\nname: x\nrules:\n  - id: a\n    {field}: {value}\n{effect}"
        "default: {effect: deny}\n"
    )

    assert located(problems) == [(5, path)]
    assert problems[0].message.startswith(message)


def test_unknown_role_is_rejected_with_a_suggestion() -> None:
    problems = problems_in(
        "version: 1\nname: x\ndefault:\n  effect: require_approval\n  roles: [approver, admn]\n"
    )

    assert located(problems) == [(5, "default.roles[1]")]
    assert problems[0].message.startswith("unknown role 'admn'; did you mean 'admin'?")


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("24", "expected a duration such as 30m, 4h or 7d"),
        ("1w", "expected a duration such as 30m, 4h or 7d"),
        ("1.5h", "expected a duration such as 30m, 4h or 7d"),
        ("30s", "must be between 1m and 30d, got 30s"),
        ("31d", "must be between 1m and 30d, got 31d"),
    ],
)
def test_bad_durations_are_rejected(duration: str, message: str) -> None:
    problems = problems_in(
        f"version: 1\nname: x\ndefaults:\n  expires_in: {duration}\ndefault: {{effect: deny}}\n"
    )

    assert located(problems) == [(4, "defaults.expires_in")]
    assert problems[0].message.startswith(message)


def test_duplicate_rule_id_is_reported_at_the_second_use() -> None:
    problems = problems_in(
        dedent(
            """\
            version: 1
            name: dupes
            rules:
              - id: same
                effect: deny
              - effect: deny
                id: same
            default: {effect: deny}
            """
        )
    )

    assert located(problems) == [(7, "rules[1].id")]
    assert problems[0].message == "duplicate rule id 'same'; first used on line 4"


@pytest.mark.parametrize(
    ("rule_id", "message"),
    [
        ("Deny-All", "must be 1 to 64 lower-case letters"),
        ("-leading-dash", "must be 1 to 64 lower-case letters"),
        ("x" * 65, "must be 1 to 64 lower-case letters"),
        ("default", "reserved for the default rule"),
    ],
)
def test_malformed_or_reserved_rule_ids_are_rejected(rule_id: str, message: str) -> None:
    problems = problems_in(
        f"version: 1\nname: x\nrules:\n  - id: {rule_id}\n    effect: deny\n"
        "default: {effect: deny}\n"
    )

    assert located(problems) == [(4, "rules[0].id")]
    assert message in problems[0].message


@pytest.mark.parametrize(
    ("key", "value"), [("approvals", "2"), ("roles", "[admin]"), ("expires_in", "4h")]
)
@pytest.mark.parametrize("effect", ["auto_approve", "deny"])
def test_approval_settings_on_a_rule_that_needs_no_approval_are_rejected(
    key: str, value: str, effect: str
) -> None:
    problems = problems_in(
        f"version: 1\nname: x\nrules:\n  - id: a\n    effect: {effect}\n    {key}: {value}\n"
        "default: {effect: deny}\n"
    )

    assert located(problems) == [(6, f"rules[0].{key}")]
    assert problems[0].message.startswith(f"{key} applies only to require_approval rules")


@pytest.mark.parametrize("approvals", ["0", "11", "true"])
def test_approvals_outside_one_to_ten_are_rejected(approvals: str) -> None:
    problems = problems_in(
        f"version: 1\nname: x\ndefault:\n  effect: require_approval\n  approvals: {approvals}\n"
    )

    assert located(problems) == [(5, "default.approvals")]


@pytest.mark.parametrize(
    ("score_range", "path", "message"),
    [
        ("{min: 70, max: 20}", "rules[0].match.risk_score", "min (70) is greater than max (20)"),
        ("{min: -1}", "rules[0].match.risk_score.min", "must be between 0 and 100, got -1"),
        ("{max: 101}", "rules[0].match.risk_score.max", "must be between 0 and 100, got 101"),
        ("{}", "rules[0].match.risk_score", "give min, max or both"),
    ],
)
def test_bad_risk_score_ranges_are_rejected(score_range: str, path: str, message: str) -> None:
    problems = problems_in(
        f"version: 1\nname: x\nrules:\n  - id: a\n    effect: deny\n    match:\n"
        f"      risk_score: {score_range}\ndefault: {{effect: deny}}\n"
    )

    assert located(problems) == [(7, path)]
    assert problems[0].message == message


def test_default_rule_with_a_match_or_id_is_rejected() -> None:
    problems = problems_in(
        "version: 1\nname: x\ndefault:\n  id: fallback\n  match: {}\n  effect: deny\n"
    )

    assert located(problems) == [(4, "default.id"), (5, "default.match")]
    assert problems[1].message.startswith("the default rule takes no match")


def test_repeated_key_in_one_mapping_is_rejected() -> None:
    problems = problems_in("version: 1\nname: x\nname: y\ndefault: {effect: deny}\n")

    assert located(problems) == [(3, "name")]
    assert problems[0].message == "duplicate key 'name'"


def test_empty_condition_list_is_rejected() -> None:
    problems = problems_in(
        "version: 1\nname: x\nrules:\n  - id: a\n    effect: deny\n    match: {branch: []}\n"
        "default: {effect: deny}\n"
    )

    assert located(problems) == [(6, "rules[0].match.branch")]
    assert problems[0].message.startswith("an empty list matches nothing")


def test_yaml_aliases_are_rejected_where_they_are_used() -> None:
    problems = problems_in(
        "version: 1\nname: x\nrules:\n  - &r {id: a, effect: deny}\n  - *r\n"
        "default: {effect: deny}\n"
    )

    assert located(problems) == [(5, "")]
    assert "aliases" in problems[0].message


def test_every_problem_in_a_policy_is_reported_at_once_in_line_order() -> None:
    problems = problems_in(
        dedent(
            """\
            version: 1
            name: many
            defaults:
              expires_in: forever
            rules:
              - id: a
                match:
                  risk_level: hgih
                effect: deny
                approvals: 2
              - id: a
                effect: auto_aprove
            """
        )
    )

    assert located(problems) == [
        (1, ""),
        (4, "defaults.expires_in"),
        (8, "rules[0].match.risk_level"),
        (10, "rules[0].approvals"),
        (11, "rules[1].id"),
        (12, "rules[1].effect"),
    ]
    assert problems[0].message == "missing required key 'default'"
    assert "did you mean 'high'?" in problems[2].message
    assert "did you mean 'auto_approve'?" in problems[5].message


def test_policy_invalid_error_carries_code_and_problem_details() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy("version: 1\nname: x\n")

    assert caught.value.code == "policy_invalid"
    assert caught.value.details["problems"] == [
        {"line": 1, "path": "", "message": "missing required key 'default'"}
    ]


def test_document_larger_than_256_kib_is_rejected_before_parsing() -> None:
    text = "version: 1\nname: big\ndefault: {effect: deny}\n"
    padding = "#" * (256 * 1024 - len(text)) + "\n"

    problems = problems_in(text + padding)

    assert len(problems) == 1
    assert problems[0].line is None
    assert problems[0].message == "policy is 262145 bytes; the limit is 262144 bytes"


def test_document_of_exactly_256_kib_is_accepted() -> None:
    text = "version: 1\nname: big\ndefault: {effect: deny}\n"
    padding = "#" * (256 * 1024 - len(text) - 1) + "\n"

    assert parse_policy(text + padding).name == "big"


def test_unsafe_yaml_tags_are_refused_not_constructed() -> None:
    problems = problems_in(
        "version: 1\nname: !!python/object/apply:os.system [echo hi]\ndefault: {effect: deny}\n"
    )

    assert located(problems) == [(2, "name")]


# Properties

optional_text = st.none() | st.text(max_size=20)
any_facts = st.builds(
    DecisionFacts,
    action=st.sampled_from(sorted(CATALOG)) | st.text(max_size=20),
    destructive=st.booleans(),
    risk_score=st.integers(),
    risk_level=st.sampled_from(list(RiskLevel)),
    repo=optional_text,
    branch=st.none()
    | st.sampled_from([*PROTECTED_BRANCHES, "production", "develop", "release"])
    | st.text(max_size=20),
    environment=st.none() | st.sampled_from(["production", "Prod", "staging"]) | optional_text,
    source=optional_text,
)


@given(any_facts)
def test_default_policy_always_names_one_of_its_rules_and_asks_approval_only_when_required(
    decision: DecisionFacts,
) -> None:
    policy = default_policy()

    verdict = evaluate(policy, decision)

    assert verdict.rule_id in {rule.id for rule in policy.rules}
    assert (verdict.approvals_required >= 1) == (verdict.effect is Effect.REQUIRE_APPROVAL)
    assert (verdict.expires_in is not None) == (verdict.effect is Effect.REQUIRE_APPROVAL)
    assert verdict.policy_version == policy.version


@given(any_facts)
def test_default_policy_denies_every_destructive_action_on_a_protected_branch(
    decision: DecisionFacts,
) -> None:
    verdict = evaluate(default_policy(), decision)

    branch = decision.branch or ""
    on_protected = branch in {"main", "master", "trunk", "production"} or branch.startswith(
        ("release/", "releases/", "hotfix/")
    )
    assert (verdict.effect is Effect.DENY) == (decision.destructive and on_protected)


@given(st.text(max_size=200))
def test_parsing_arbitrary_text_either_succeeds_or_raises_policy_invalid(text: str) -> None:
    outcome: Policy | PolicyInvalid
    try:
        outcome = parse_policy(text)
    except PolicyInvalid as invalid:
        outcome = invalid

    if isinstance(outcome, PolicyInvalid):
        assert outcome.problems
    else:
        assert outcome.rules[-1].id == "default"
