"""Specification of the risk model (dragon.domain.risk): levels, factors, floor and ceiling."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragon.domain.actions import CATALOG, ActionSpec
from dragon.domain.enums import RiskLevel
from dragon.domain.risk import RiskFactor, assess, is_protected_branch, level_for

RERUN = CATALOG["rerun_job"]  # base risk 10
REVERT = CATALOG["revert_commit"]  # base risk 60
NOTIFY = CATALOG["notify_owners"]  # base risk 0


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0, RiskLevel.LOW),
        (29, RiskLevel.LOW),
        (30, RiskLevel.MEDIUM),
        (59, RiskLevel.MEDIUM),
        (60, RiskLevel.HIGH),
        (79, RiskLevel.HIGH),
        (80, RiskLevel.CRITICAL),
        (100, RiskLevel.CRITICAL),
    ],
)
def test_level_boundaries(score: int, level: RiskLevel) -> None:
    assert level_for(score) is level


@pytest.mark.parametrize(
    ("extra_weight", "score", "level"),
    [
        (19, 29, RiskLevel.LOW),
        (20, 30, RiskLevel.MEDIUM),
        (49, 59, RiskLevel.MEDIUM),
        (50, 60, RiskLevel.HIGH),
        (69, 79, RiskLevel.HIGH),
        (70, 80, RiskLevel.CRITICAL),
    ],
)
def test_assessed_score_crosses_levels_at_the_boundaries(
    extra_weight: int, score: int, level: RiskLevel
) -> None:
    risk = assess(action=RERUN, extra=[RiskFactor("flaky_history", extra_weight)])

    assert (risk.score, risk.level) == (score, level)


def test_plain_action_scores_its_base_risk_with_one_explained_factor() -> None:
    risk = assess(action=REVERT)

    assert (risk.score, risk.level) == (60, RiskLevel.HIGH)
    assert risk.factors == (RiskFactor("action_base", 60, "base risk of revert_commit"),)


@pytest.mark.parametrize(
    "branch",
    ["main", "master", "trunk", "production", "release/2.1", "releases/2026-11", "hotfix/login"],
)
def test_protected_branch_adds_fifteen(branch: str) -> None:
    risk = assess(action=RERUN, branch=branch)

    assert risk.score == 25
    assert risk.factors[1] == RiskFactor(
        "protected_branch", 15, f"targets protected branch {branch}"
    )


@pytest.mark.parametrize(
    "branch", [None, "", "feature/main", "Main", "mainline", "release", "my-release/1"]
)
def test_other_branches_add_nothing(branch: str | None) -> None:
    assert is_protected_branch(branch) is False
    assert assess(action=RERUN, branch=branch).score == 10


@pytest.mark.parametrize("environment", ["production", "prod", "Production", "PROD"])
def test_production_environment_adds_twenty_five(environment: str) -> None:
    risk = assess(action=RERUN, environment=environment)

    assert (risk.score, risk.level) == (35, RiskLevel.MEDIUM)
    assert [f.name for f in risk.factors] == ["action_base", "production_environment"]


@pytest.mark.parametrize("environment", [None, "staging", "preprod", "production-eu"])
def test_other_environments_add_nothing(environment: str | None) -> None:
    assert assess(action=RERUN, environment=environment).score == 10


def test_protected_branch_and_production_add_up_and_keep_every_factor() -> None:
    risk = assess(
        action=REVERT,
        branch="main",
        environment="production",
        extra=[RiskFactor("large_diff", 5, "800 lines")],
    )

    assert (risk.score, risk.level) == (100, RiskLevel.CRITICAL)  # 60 + 15 + 25 + 5, clamped
    assert [(f.name, f.weight) for f in risk.factors] == [
        ("action_base", 60),
        ("protected_branch", 15),
        ("production_environment", 25),
        ("large_diff", 5),
    ]


def test_score_is_clamped_at_one_hundred() -> None:
    risk = assess(action=RERUN, extra=[RiskFactor("everything", 500)])

    assert (risk.score, risk.level) == (100, RiskLevel.CRITICAL)


@pytest.mark.parametrize("negative", [-1, -30, -60, -1000])
def test_negative_factors_cannot_lower_the_score_below_the_base_risk(negative: int) -> None:
    risk = assess(action=REVERT, extra=[RiskFactor("well_tested", negative)])

    assert (risk.score, risk.level) == (60, RiskLevel.HIGH)
    assert risk.factors[-1] == RiskFactor("well_tested", negative)


def test_negative_factors_do_offset_the_added_factors() -> None:
    risk = assess(action=RERUN, environment="prod", extra=[RiskFactor("canary_passed", -20)])

    assert risk.score == 15  # 10 + 25 - 20


def test_zero_risk_action_never_goes_below_zero() -> None:
    assert assess(action=NOTIFY, extra=[RiskFactor("harmless", -10)]).score == 0


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(CATALOG.values(), key=lambda spec: spec.name)),
    st.sampled_from([None, "main", "feature/x", "release/1"]),
    st.sampled_from([None, "production", "staging"]),
    st.lists(st.integers(-200, 200), max_size=4),
)
def test_score_is_always_between_the_base_risk_and_one_hundred(
    action: ActionSpec, branch: str | None, environment: str | None, weights: list[int]
) -> None:
    risk = assess(
        action=action,
        branch=branch,
        environment=environment,
        extra=[RiskFactor(f"f{i}", w) for i, w in enumerate(weights)],
    )

    raw = sum(f.weight for f in risk.factors)
    assert risk.score == max(action.base_risk, min(100, raw))
    assert action.base_risk <= risk.score <= 100
    assert risk.level is level_for(risk.score)
    assert risk.factors[0].name == "action_base"
