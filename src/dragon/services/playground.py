"""The public playground: the real built-in analyzer, risk model and default policy judge a
visitor's proposal, or a failing CI log the analyzer turns into one.

Nothing here executes, notifies or reads the store, and the LLM analyzer is never asked (a
public page must not spend tokens or send a visitor's text anywhere). Entries live in this
process's memory only, expire after a day, and the statistics are counts of those entries.
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
from dragon.domain.risk import RiskFactor, assess, triage_factors
from dragon.domain.triage import Analysis, TriageContext, analyze
from dragon.services import playground_logs as logs

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
class FailingCi:
    """A failing CI job as a visitor describes it: the log excerpt and where it ran."""

    log: str
    source: str = "github"
    repo: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    pipeline: str | None = None
    job: str | None = None
    scenario: str | None = None


@dataclass(frozen=True, kw_only=True)
class Scenario:
    id: str
    name: str
    proposal: PlaygroundProposal | None = None
    failure: FailingCi | None = None


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
    analysis: Analysis | None = None  # when the analyzer proposed the action from a log


@dataclass
class PlaygroundStats:
    total: int = 0
    by_effect: dict[str, int] = field(default_factory=dict)
    by_risk_level: dict[str, int] = field(default_factory=dict)
    by_action: dict[str, int] = field(default_factory=dict)
    analyzed: int = 0
    by_classification: dict[str, int] = field(default_factory=dict)


PROPOSAL_SCENARIOS: tuple[Scenario, ...] = tuple(
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
_SHA = "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"
CI_SCENARIOS: tuple[Scenario, ...] = tuple(
    Scenario(id=sid, name=name, failure=FailingCi(scenario=sid, repo="acme/shop", **fields))
    for sid, name, fields in (
        (
            "ci-format-check",
            "CI log: the format check failed on a pull request",
            {"log": logs.LINT_ON_A_PULL_REQUEST, "branch": "feature/cart-badge", "job": "lint"},
        ),
        (
            "ci-network-blip",
            "CI log: the checkout lost the network",
            {"log": logs.NETWORK_DURING_CHECKOUT, "branch": "feature/cart-badge", "job": "test"},
        ),
        (
            "ci-test-on-main",
            "CI log: a test broke with a new commit on main",
            {"log": logs.TEST_FAILURE_ON_MAIN, "branch": "main", "commit_sha": _SHA, "job": "test"},
        ),
        (
            "ci-missing-permission",
            "CI log: a job may not push",
            {"log": logs.PUSH_WITHOUT_PERMISSION, "branch": "main", "job": "docs"},
        ),
    )
)
SCENARIOS = PROPOSAL_SCENARIOS + CI_SCENARIOS
MAX_LOG_CHARS = 64 * 1024


def _title(analysis: Analysis) -> str:
    # The same shape as a triaged decision's title, with the failure class for the incident.
    found = analysis.classification.failure_class.value.replace("_", " ")
    return f"{analysis.proposal.action.replace('_', ' ')}: {found}"


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
        return self._keep(proposal, source="api")

    def analyze(self, failure: FailingCi) -> PlaygroundVerdict:
        """What triage makes of a failing CI job: the built-in analyzer classifies the log and
        proposes an action, scored with triage's factors and judged by the default policy, as
        for an incident's first signal."""
        context = TriageContext(
            source=failure.source,
            kind="ci_failure",
            repo=failure.repo,
            branch=failure.branch,
            commit_sha=failure.commit_sha,
            pipeline=failure.pipeline,
            job=failure.job,
        )
        analysis = analyze(failure.log[-MAX_LOG_CHARS:], context)
        proposal = PlaygroundProposal(
            title=_title(analysis),
            action=analysis.proposal.action,
            rationale=analysis.proposal.rationale,
            impact=analysis.proposal.impact,
            repo=failure.repo,
            branch=failure.branch,
            scenario=failure.scenario,
        )
        factors = (
            *triage_factors(
                action=analysis.proposal.action,
                confidence=analysis.classification.confidence,
                signal_count=context.signal_count,
            ),
            *analysis.extra_factors,
        )
        return self._keep(proposal, source=failure.source, extra=factors, analysis=analysis)

    def _keep(
        self,
        proposal: PlaygroundProposal,
        *,
        source: str,
        extra: tuple[RiskFactor, ...] = (),
        analysis: Analysis | None = None,
    ) -> PlaygroundVerdict:
        spec = action_spec(proposal.action)
        now = self._clock()
        self._expire(now)
        risk = assess(
            action=spec, branch=proposal.branch, environment=proposal.environment, extra=extra
        )
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
                source=source,
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
            analysis=analysis,
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
            analyzed=sum(1 for e in entries if e.analysis is not None),
            by_classification=dict(
                Counter(
                    e.analysis.classification.failure_class.value
                    for e in entries
                    if e.analysis is not None
                )
            ),
        )
