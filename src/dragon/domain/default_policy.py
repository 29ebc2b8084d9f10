"""The policy Dragon applies until an operator loads their own (see dragon.domain.policy)."""

from __future__ import annotations

DEFAULT_POLICY_TEXT = """\
# Dragon's default policy. Rules are tried top to bottom; the first whose match holds decides.
# A match holds when every condition given in it holds; a decision lacking a fact a condition
# names (no branch, say) does not match. When no rule matches, `default` decides.
version: 1          # policy format version; only 1 exists
name: default
defaults:
  expires_in: 24h   # how long an approval request stays open: integer + s, m, h or d
limits:
  actions_per_repo_per_hour: 10   # blast radius: runs beyond this per repository and hour fail

rules:
  # Destructive actions (pushing a revert, rolling back) change a protected branch directly,
  # bypassing review; they must go through a pull request instead.
  - id: deny-destructive-on-protected-branches
    description: Destructive actions are never run directly on a protected branch.
    match:
      destructive: true
      branch: [main, master, trunk, production, "release/*", "releases/*", "hotfix/*"]
    effect: deny
    reason: Destructive actions on protected branches are denied; open a pull request instead.

  # "prod" is the short name the risk model also treats as production.
  - id: production-requires-two-approvers
    description: Anything touching production needs two approvers.
    match:
      environment: [production, prod]
    effect: require_approval
    approvals: 2
    roles: [approver, admin]

  - id: critical-risk-requires-two-approvals
    description: Critical-risk decisions need two approvals.
    match:
      risk_level: critical
    effect: require_approval
    approvals: 2

  - id: high-risk-requires-approval
    description: High-risk decisions need one approval.
    match:
      risk_level: high
    effect: require_approval
    approvals: 1

  - id: medium-risk-requires-approval
    description: Medium-risk decisions need one approval.
    match:
      risk_level: medium
    effect: require_approval
    approvals: 1

  - id: low-risk-auto-approves
    description: Low-risk decisions run without waiting for a person.
    match:
      risk_level: low
    effect: auto_approve

# Reached only by a decision no rule above covers; a person looks at it.
default:
  description: No rule matched; one approval is needed.
  effect: require_approval
  approvals: 1
"""
