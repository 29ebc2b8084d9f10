"""The risk model: a score from 0 to 100 built from named, weighted factors.

Every factor is kept, so an approver can see exactly why a decision scored what it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dragon.domain.actions import ActionSpec
from dragon.domain.enums import RiskLevel

PRODUCTION_ENVIRONMENTS = frozenset({"production", "prod"})
PROTECTED_BRANCH_NAMES = frozenset({"main", "master", "trunk", "production"})
PROTECTED_BRANCH_PREFIXES = ("release/", "releases/", "hotfix/")
# Actions that change code (through a pull request): how much they touch adds risk.
CODE_CHANGING_ACTIONS = frozenset(
    {"autofix_pull_request", "revert_pull_request", "open_autofix_pr", "open_revert_pr"}
)
REPEATED_FAILURES = 3


@dataclass(frozen=True)
class RiskFactor:
    name: str
    weight: int
    detail: str = ""


@dataclass(frozen=True)
class RiskAssessment:
    score: int
    level: RiskLevel
    factors: tuple[RiskFactor, ...]


def level_for(score: int) -> RiskLevel:
    if score >= 80:
        return RiskLevel.CRITICAL
    if score >= 60:
        return RiskLevel.HIGH
    if score >= 30:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW


def is_protected_branch(branch: str | None) -> bool:
    if not branch:
        return False
    return branch in PROTECTED_BRANCH_NAMES or branch.startswith(PROTECTED_BRANCH_PREFIXES)


def assess(
    *,
    action: ActionSpec,
    branch: str | None = None,
    environment: str | None = None,
    extra: Iterable[RiskFactor] = (),
) -> RiskAssessment:
    """Score a proposed action. The action's base risk is a floor no extra factor can lower."""
    factors = [RiskFactor("action_base", action.base_risk, f"base risk of {action.name}")]
    if is_protected_branch(branch):
        factors.append(RiskFactor("protected_branch", 15, f"targets protected branch {branch}"))
    if environment and environment.lower() in PRODUCTION_ENVIRONMENTS:
        factors.append(RiskFactor("production_environment", 25, "targets production"))
    factors.extend(extra)
    raw = sum(f.weight for f in factors)
    score = max(action.base_risk, min(100, raw))
    return RiskAssessment(score=score, level=level_for(score), factors=tuple(factors))


def triage_factors(
    *,
    action: str,
    confidence: float | None,
    signal_count: int = 1,
    files_touched: int | None = None,
    change_freeze: bool = False,
) -> tuple[RiskFactor, ...]:
    """The factors triage adds to `assess`'s own (action base, branch, environment), each
    named, weighted and explained so an approver sees why a decision scored what it did."""
    factors: list[RiskFactor] = []
    if confidence is not None:
        doubt = round((1.0 - max(0.0, min(1.0, confidence))) * 20)
        if doubt:
            factors.append(
                RiskFactor("analyzer_confidence", doubt, f"analyzer confidence {confidence:.2f}")
            )
    if signal_count >= REPEATED_FAILURES:
        factors.append(
            RiskFactor("repeated_failures", 10, f"failed {signal_count} times in this incident")
        )
    if action in CODE_CHANGING_ACTIONS:
        if files_touched is None:
            factors.append(RiskFactor("change_size", 5, "size of the change is not known"))
        elif files_touched > 0:
            weight = min(20, 2 + files_touched // 5 * 2)
            factors.append(RiskFactor("change_size", weight, f"touches {files_touched} files"))
    if change_freeze:
        factors.append(RiskFactor("change_freeze", 30, "a change freeze is in force"))
    return tuple(factors)
