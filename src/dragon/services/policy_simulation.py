"""The policy simulator: what a candidate policy would have decided for recent decisions.

It evaluates each stored decision's recorded facts (action, risk, repo, branch, environment,
source) under the candidate, beside what the policy of the day actually decided. It writes
nothing and activates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from dragon.domain.actions import CATALOG
from dragon.domain.entities import Decision
from dragon.domain.policy import DecisionFacts, Policy, PolicyVerdict, evaluate, parse_policy
from dragon.domain.ports import DecisionQuery, Page
from dragon.services.decisions import DecisionService

MAX_SIMULATED = 500


@dataclass(frozen=True)
class SimulatedDecision:
    decision: Decision
    candidate: PolicyVerdict

    @property
    def changed(self) -> bool:
        """Whether the candidate's rule or required approvals differ from what was recorded."""
        return (
            self.candidate.rule_id != self.decision.policy_rule
            or self.candidate.approvals_required != self.decision.approvals_required
        )


@dataclass(frozen=True)
class Simulation:
    policy: Policy
    results: list[SimulatedDecision]

    @property
    def changed(self) -> int:
        return sum(1 for r in self.results if r.changed)


def facts_of(decision: Decision) -> DecisionFacts:
    spec = CATALOG.get(decision.action)
    return DecisionFacts(
        action=decision.action,
        destructive=spec.destructive if spec else False,
        risk_score=decision.risk_score,
        risk_level=decision.risk_level,
        repo=decision.repo,
        branch=decision.branch,
        environment=decision.environment,
        source=decision.source,
    )


async def simulate(decisions: DecisionService, *, source: str, last: int) -> Simulation:
    """Raises PolicyInvalid, with every problem and its line, when `source` does not validate."""
    policy = parse_policy(source)
    recent, _ = await decisions.find(
        DecisionQuery(page=Page(limit=max(1, min(last, MAX_SIMULATED))))
    )
    return Simulation(
        policy=policy,
        results=[SimulatedDecision(d, evaluate(policy, facts_of(d))) for d in recent],
    )
