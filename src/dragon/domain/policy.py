"""Policy-as-code: an ordered list of rules decides whether a decision runs, waits or is refused.

A policy is YAML (DEFAULT_POLICY_TEXT in default_policy.py is a worked example)::

    version: 1                    # format version; only 1 is accepted
    name: default
    defaults: {expires_in: 24h}   # optional; durations are an integer + s, m, h or d
    rules:                        # optional; first match wins
      - id: deny-destructive-on-main   # ^[a-z0-9][a-z0-9_-]{0,63}$, unique
        description: ...
        match:                    # every given condition must hold; no match = matches all
          action: revert_commit   # action / risk_level / environment / source: one or a list
          destructive: true
          risk_level: [high, critical]
          risk_score: {min: 0, max: 100}
          repo: "acme/*"          # repo / branch: fnmatch globs, case-sensitive
          branch: [main, "release/*"]
          environment: production # case-insensitive
          source: github
        effect: deny              # deny | auto_approve | require_approval
        reason: ...
        approvals: 2              # require_approval only: 1..10, default 1
        roles: [approver, admin]  # require_approval only: default [approver]
        expires_in: 4h            # require_approval only: 1m..30d
    default:                      # required; applies when no rule matched (its id is "default")
      effect: require_approval
    limits:                       # optional: the blast radius of executed actions
      actions_per_repo_per_hour: 10   # 1..10000; runs beyond it in the last hour fail

A condition on a fact the decision does not have (no repo, say) never holds.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

import yaml

from dragon.domain.actions import CATALOG
from dragon.domain.default_policy import DEFAULT_POLICY_TEXT
from dragon.domain.enums import RiskLevel, Role, SignalSource
from dragon.domain.errors import PolicyInvalid
from dragon.domain.policy_schema import NodeReader, compose_document, describe, join

FORMAT_VERSION = 1
MAX_APPROVALS = 10
MAX_POLICY_BYTES = 256 * 1024
DEFAULT_RULE_ID = "default"
DEFAULT_EXPIRY = timedelta(hours=24)
DEFAULT_APPROVER_ROLES: tuple[Role, ...] = (Role.APPROVER,)

_TOP_KEYS = ("version", "name", "defaults", "rules", "default", "limits")
_LIMIT_KEYS = ("actions_per_repo_per_hour",)
MAX_ACTIONS_PER_REPO_PER_HOUR = 10_000
_RULE_KEYS = ("id", "description", "match", "effect", "approvals", "roles", "expires_in", "reason")
_MATCH_KEYS = (
    "action",
    "destructive",
    "risk_level",
    "risk_score",
    "repo",
    "branch",
    "environment",
    "source",
)
_APPROVAL_ONLY_KEYS = ("approvals", "roles", "expires_in")
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_MIN_EXPIRY, _MAX_EXPIRY = "1m", "30d"
_DEFAULT_REFUSES = {
    "id": 'the default rule takes no id; it is always "default"',
    "match": "the default rule takes no match; it applies when no other rule matched",
}


class Effect(StrEnum):
    AUTO_APPROVE = "auto_approve"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


@dataclass(frozen=True)
class DecisionFacts:
    """What a rule can look at about a proposed decision."""

    action: str
    destructive: bool
    risk_score: int
    risk_level: RiskLevel
    repo: str | None = None
    branch: str | None = None
    environment: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class RuleMatch:
    """Conditions that must all hold; None means the condition was not given."""

    actions: tuple[str, ...] | None = None
    destructive: bool | None = None
    risk_levels: tuple[RiskLevel, ...] | None = None
    min_score: int | None = None
    max_score: int | None = None
    repos: tuple[str, ...] | None = None
    branches: tuple[str, ...] | None = None
    environments: tuple[str, ...] | None = None  # lower-cased: environments compare ignoring case
    sources: tuple[str, ...] | None = None

    def matches(self, facts: DecisionFacts) -> bool:
        environment = None if facts.environment is None else facts.environment.lower()
        return (
            _among(facts.action, self.actions)
            and (self.destructive is None or facts.destructive == self.destructive)
            and (self.risk_levels is None or facts.risk_level in self.risk_levels)
            and (self.min_score is None or facts.risk_score >= self.min_score)
            and (self.max_score is None or facts.risk_score <= self.max_score)
            and _globbed(facts.repo, self.repos)
            and _globbed(facts.branch, self.branches)
            and _among(environment, self.environments)
            and _among(facts.source, self.sources)
        )


@dataclass(frozen=True)
class Rule:
    id: str
    effect: Effect
    description: str = ""
    match: RuleMatch = field(default_factory=RuleMatch)
    approvals: int = 1
    roles: tuple[Role, ...] = DEFAULT_APPROVER_ROLES
    expires_in: timedelta = DEFAULT_EXPIRY
    reason: str = ""


@dataclass(frozen=True)
class Policy:
    """Ordered rules, first match wins; the last rule is the default and matches everything."""

    name: str
    rules: tuple[Rule, ...]
    version: str
    source: str
    # At most this many actions run per repository in any hour; None: no limit.
    actions_per_repo_per_hour: int | None = None

    def __post_init__(self) -> None:
        if not self.rules or self.rules[-1].match != RuleMatch():
            raise ValueError("a policy must end with a default rule that matches everything")


@dataclass(frozen=True)
class PolicyVerdict:
    effect: Effect
    rule_id: str
    policy_version: str
    approvals_required: int
    approver_roles: tuple[Role, ...]
    expires_in: timedelta | None
    reason: str


def evaluate(policy: Policy, facts: DecisionFacts) -> PolicyVerdict:
    *rules, fallback = policy.rules
    rule = next((r for r in rules if r.match.matches(facts)), fallback)
    gated = rule.effect is Effect.REQUIRE_APPROVAL
    return PolicyVerdict(
        effect=rule.effect,
        rule_id=rule.id,
        policy_version=policy.version,
        approvals_required=rule.approvals if gated else 0,
        approver_roles=rule.roles if gated else (),
        expires_in=rule.expires_in if gated else None,
        reason=rule.reason or rule.description or f"matched rule {rule.id!r}",
    )


@functools.cache
def default_policy() -> Policy:
    return parse_policy(DEFAULT_POLICY_TEXT)


def policy_version(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_policy(text: str) -> Policy:
    """Validate and build a policy; every problem found is raised together in PolicyInvalid."""
    root, problems = compose_document(text, max_bytes=MAX_POLICY_BYTES)
    if problems:
        raise PolicyInvalid(problems)
    reader = NodeReader()
    top = reader.mapping(root, "", keys=_TOP_KEYS, required=("version", "name", "default")) or {}
    if "version" in top:
        version = reader.value(top["version"])
        if version != FORMAT_VERSION or isinstance(version, bool):
            reader.report(
                f"format version must be {FORMAT_VERSION}, got {describe(top['version'])}",
                node=top["version"],
                path="version",
            )
    name = reader.text(top["name"], "name") if "name" in top else None
    expiry = _read_defaults(reader, top["defaults"]) if "defaults" in top else DEFAULT_EXPIRY
    items = reader.sequence(top["rules"], "rules") if "rules" in top else []
    ids: dict[str, int] = {}
    rules = [
        _read_rule(reader, item, f"rules[{i}]", expiry=expiry, ids=ids)
        for i, item in enumerate(items or [])
    ]
    if "default" in top:
        rules.append(_read_rule(reader, top["default"], "default", expiry=expiry, ids=None))
    per_repo = _read_limits(reader, top["limits"]) if "limits" in top else None

    if reader.problems or name is None:
        raise PolicyInvalid(sorted(reader.problems, key=lambda problem: problem.line or 0))
    built = tuple(rule for rule in rules if rule is not None)
    return Policy(
        name=name,
        rules=built,
        version=policy_version(text),
        source=text,
        actions_per_repo_per_hour=per_repo,
    )


def _read_limits(reader: NodeReader, node: yaml.Node) -> int | None:
    fields = reader.mapping(node, "limits", keys=_LIMIT_KEYS)
    if not fields:
        return None
    return reader.optional(
        fields,
        "actions_per_repo_per_hour",
        path="limits",
        default=None,
        read=functools.partial(reader.integer, low=1, high=MAX_ACTIONS_PER_REPO_PER_HOUR),
    )


def _read_defaults(reader: NodeReader, node: yaml.Node) -> timedelta:
    fields = reader.mapping(node, "defaults", keys=("expires_in",))
    if not fields:
        return DEFAULT_EXPIRY
    expiry = reader.duration(
        fields["expires_in"], "defaults.expires_in", low=_MIN_EXPIRY, high=_MAX_EXPIRY
    )
    # A bad default is reported already; falling back lets the rules still be checked.
    return expiry or DEFAULT_EXPIRY


def _read_rule(
    reader: NodeReader, node: yaml.Node, path: str, *, expiry: timedelta, ids: dict[str, int] | None
) -> Rule | None:
    """Read one rule; `ids` maps ids already read to their lines, and is None for the default."""
    fields = reader.mapping(
        node,
        path,
        keys=_RULE_KEYS,
        required=("effect",) if ids is None else ("id", "effect"),
        refused=_DEFAULT_REFUSES if ids is None else None,
    )
    if fields is None:
        return None
    rule_id = DEFAULT_RULE_ID if ids is None else _read_rule_id(reader, fields, path, ids=ids)
    effect_word = reader.optional(
        fields,
        "effect",
        path=path,
        default=None,
        read=functools.partial(reader.choice, choices=list(Effect), what="effect"),
    )
    effect = None if effect_word is None else Effect(effect_word)
    if effect not in (None, Effect.REQUIRE_APPROVAL):
        for key in (k for k in _APPROVAL_ONLY_KEYS if k in fields):
            reader.report(
                f"{key} applies only to require_approval rules, and this rule's effect is {effect}",
                node=fields[key],
                path=join(path, key),
            )
    rule = Rule(
        id=rule_id or DEFAULT_RULE_ID,
        effect=effect or Effect.DENY,
        description=reader.optional(fields, "description", path=path, default="", read=reader.text),
        match=reader.optional(
            fields,
            "match",
            path=path,
            default=RuleMatch(),
            read=functools.partial(_read_match, reader),
        ),
        approvals=reader.optional(
            fields,
            "approvals",
            path=path,
            default=1,
            read=functools.partial(reader.integer, low=1, high=MAX_APPROVALS),
        ),
        roles=reader.optional(
            fields,
            "roles",
            path=path,
            default=DEFAULT_APPROVER_ROLES,
            read=functools.partial(_read_roles, reader),
        ),
        expires_in=reader.optional(
            fields,
            "expires_in",
            path=path,
            default=expiry,
            read=functools.partial(reader.duration, low=_MIN_EXPIRY, high=_MAX_EXPIRY),
        ),
        reason=reader.optional(fields, "reason", path=path, default="", read=reader.text),
    )
    # The stand-ins for a missing id or effect only keep the reading going: the problem is
    # already reported, so parse_policy raises before this rule could be used.
    return None if rule_id is None or effect is None else rule


def _read_rule_id(
    reader: NodeReader, fields: dict[str, yaml.Node], path: str, *, ids: dict[str, int]
) -> str | None:
    node = fields.get("id")
    rule_id = None if node is None else reader.text(node, join(path, "id"))
    if node is None or rule_id is None:
        return None
    problem = None
    if not _RULE_ID.fullmatch(rule_id):
        problem = (
            f"rule id {rule_id!r} must be 1 to 64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    elif rule_id == DEFAULT_RULE_ID:
        problem = f"rule id {rule_id!r} is reserved for the default rule"
    elif rule_id in ids:
        problem = f"duplicate rule id {rule_id!r}; first used on line {ids[rule_id]}"
    if problem is not None:
        reader.report(problem, node=node, path=join(path, "id"))
        return None
    ids[rule_id] = node.start_mark.line + 1
    return rule_id


def _read_roles(reader: NodeReader, node: yaml.Node, path: str) -> tuple[Role, ...] | None:
    words = reader.one_or_many(
        node, path, functools.partial(reader.choice, choices=list(Role), what="role")
    )
    return None if words is None else tuple(Role(word) for word in words)


def _read_match(reader: NodeReader, node: yaml.Node, path: str) -> RuleMatch | None:
    fields = reader.mapping(node, path, keys=_MATCH_KEYS)
    if fields is None:
        return None
    before = len(reader.problems)

    def words(key: str, choices: Collection[str] | None = None) -> tuple[str, ...] | None:
        if key not in fields:
            return None
        what = key.replace("_", " ")
        read = (
            reader.text
            if choices is None
            else functools.partial(reader.choice, choices=choices, what=what)
        )
        return reader.one_or_many(fields[key], join(path, key), read)

    actions = words("action", CATALOG)
    levels = words("risk_level", list(RiskLevel))
    repos, branches = words("repo"), words("branch")
    environments = words("environment")
    sources = words("source", list(SignalSource))
    destructive = reader.optional(fields, "destructive", path=path, default=None, read=reader.flag)
    low, high = (None, None)
    if "risk_score" in fields:
        low, high = _read_score_range(reader, fields["risk_score"], join(path, "risk_score"))
    if len(reader.problems) > before:
        return None
    return RuleMatch(
        actions=actions,
        destructive=destructive,
        risk_levels=None if levels is None else tuple(RiskLevel(level) for level in levels),
        min_score=low,
        max_score=high,
        repos=repos,
        branches=branches,
        environments=None if environments is None else tuple(e.lower() for e in environments),
        sources=sources,
    )


def _read_score_range(
    reader: NodeReader, node: yaml.Node, path: str
) -> tuple[int | None, int | None]:
    fields = reader.mapping(node, path, keys=("min", "max"))
    if fields is None:
        return None, None
    if not fields:
        reader.report("give min, max or both", node=node, path=path)
    score = functools.partial(reader.integer, low=0, high=100)
    low = reader.optional(fields, "min", path=path, default=None, read=score)
    high = reader.optional(fields, "max", path=path, default=None, read=score)
    if low is not None and high is not None and low > high:
        reader.report(f"min ({low}) is greater than max ({high})", node=node, path=path)
    return low, high


def _among(value: str | None, allowed: tuple[str, ...] | None) -> bool:
    return allowed is None or (value is not None and value in allowed)


def _globbed(value: str | None, patterns: tuple[str, ...] | None) -> bool:
    return patterns is None or (
        value is not None and any(fnmatchcase(value, pattern) for pattern in patterns)
    )
