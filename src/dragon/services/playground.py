"""The public playground: the real risk model and default policy judge a visitor's proposal.

Nothing here executes, notifies or reads the store. Entries live in this process's memory only,
expire after a day, and the playground's statistics are counts of those entries.
"""

from __future__ import annotations

import secrets
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dragon.domain.actions import CATALOG, action_spec
from dragon.domain.clock import Clock
from dragon.domain.enums import RiskLevel
from dragon.domain.errors import NotFound
from dragon.domain.policy import DecisionFacts, Effect, Policy, default_policy, evaluate
from dragon.domain.risk import RiskFactor, assess

TTL = timedelta(days=1)
MAX_ENTRIES = 10_000


@dataclass(frozen=True, kw_only=True)
class PlaygroundProposal:
    title: str
    action: str
    rationale: str = ""
    impact: str = ""
    repo: str | None = None
    branch: str | None = None
    environment: str | None = None
    scenario: str | None = None


@dataclass(frozen=True, kw_only=True)
class Scenario:
    id: str
    name: str
    proposal: PlaygroundProposal


@dataclass(frozen=True, kw_only=True)
class PlaygroundVerdict:
    id: str
    proposal: PlaygroundProposal
    risk_score: int
    risk_level: RiskLevel
    risk_factors: tuple[RiskFactor, ...]
    effect: Effect
    policy_rule: str
    policy_reason: str
    policy_version: str
    approvals_required: int
    approver_roles: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    executed: bool = False


@dataclass
class PlaygroundStats:
    total: int = 0
    by_effect: dict[str, int] = field(default_factory=dict)
    by_risk_level: dict[str, int] = field(default_factory=dict)
    by_action: dict[str, int] = field(default_factory=dict)


SCENARIOS: tuple[Scenario, ...] = tuple(
    Scenario(id=sid, name=name, proposal=PlaygroundProposal(scenario=sid, **fields))
    for sid, name, fields in (
        (
            "flaky-test-rerun",
            "A flaky test failed on a feature branch",
            {
                "title": "Rerun the failed integration job",
                "action": "rerun_job",
                "rationale": "The test timed out once and passed on the previous three runs.",
                "impact": "One CI job runs again; nothing is deployed.",
                "repo": "acme/shop",
                "branch": "feature/cart-badge",
            },
        ),
        (
            "lint-autofix",
            "Formatting broke the build of a pull request",
            {
                "title": "Open a draft pull request with the formatter's fix",
                "action": "open_autofix_pr",
                "rationale": "ruff format reports 3 files; the fix is mechanical.",
                "impact": "A draft pull request for review; the branch is untouched.",
                "repo": "acme/shop",
                "branch": "feature/checkout-copy",
            },
        ),
        (
            "revert-on-main",
            "A bad commit landed on main",
            {
                "title": "Push a revert of 4f2a9c1 to main",
                "action": "revert_commit",
                "rationale": "The commit broke the build of main for everyone.",
                "impact": "main moves without review.",
                "repo": "acme/shop",
                "branch": "main",
            },
        ),
        (
            "production-rollback",
            "Checkout returns 500s after a deploy",
            {
                "title": "Roll checkout back to the previous release",
                "action": "rollback_deployment",
                "rationale": "Error rate rose from 0.1% to 12% within a minute of the deploy.",
                "impact": "Production serves yesterday's release until a fix ships.",
                "environment": "production",
            },
        ),
        (
            "staging-runbook",
            "A staging disk is almost full",
            {
                "title": "Run the log-cleanup runbook on staging",
                "action": "run_runbook",
                "rationale": "The disk is at 93%; the runbook deletes rotated logs.",
                "impact": "Old log files on staging are removed.",
                "environment": "staging",
            },
        ),
    )
)


class Playground:
    def __init__(self, *, clock: Clock, policy: Policy | None = None) -> None:
        self._clock = clock
        self._policy = policy or default_policy()
        self._entries: OrderedDict[str, PlaygroundVerdict] = OrderedDict()

    @staticmethod
    def scenarios() -> tuple[Scenario, ...]:
        return SCENARIOS

    @staticmethod
    def actions() -> list[str]:
        return sorted(CATALOG)

    def scenario(self, scenario_id: str) -> Scenario:
        for scenario in SCENARIOS:
            if scenario.id == scenario_id:
                return scenario
        raise NotFound(f"no playground scenario {scenario_id!r}", code="scenario_not_found")

    def _expire(self, now: datetime) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.expires_at > now and len(self._entries) < MAX_ENTRIES:
                break
            self._entries.popitem(last=False)

    def judge(self, proposal: PlaygroundProposal) -> PlaygroundVerdict:
        """Score and evaluate, exactly as a real proposal would be, and keep the result."""
        spec = action_spec(proposal.action)
        now = self._clock()
        self._expire(now)
        risk = assess(action=spec, branch=proposal.branch, environment=proposal.environment)
        verdict = evaluate(
            self._policy,
            DecisionFacts(
                action=spec.name,
                destructive=spec.destructive,
                risk_score=risk.score,
                risk_level=risk.level,
                repo=proposal.repo,
                branch=proposal.branch,
                environment=proposal.environment,
                source="api",
            ),
        )
        entry = PlaygroundVerdict(
            id="pg_" + secrets.token_hex(10),
            proposal=proposal,
            risk_score=risk.score,
            risk_level=risk.level,
            risk_factors=risk.factors,
            effect=verdict.effect,
            policy_rule=verdict.rule_id,
            policy_reason=verdict.reason,
            policy_version=verdict.policy_version,
            approvals_required=verdict.approvals_required,
            approver_roles=tuple(r.value for r in verdict.approver_roles),
            created_at=now,
            expires_at=now + TTL,
        )
        self._entries[entry.id] = entry
        return entry

    def stats(self) -> PlaygroundStats:
        """Real counts of the entries kept in the last day."""
        self._expire(self._clock())
        entries = list(self._entries.values())
        return PlaygroundStats(
            total=len(entries),
            by_effect=dict(Counter(e.effect.value for e in entries)),
            by_risk_level=dict(Counter(e.risk_level.value for e in entries)),
            by_action=dict(Counter(e.proposal.action for e in entries)),
        )
