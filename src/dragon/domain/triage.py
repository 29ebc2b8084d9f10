"""The built-in analyzer: classify a failure from its log, record the evidence, and propose an
action from the catalog under fixed rules. Pure and deterministic: the same input always gives
the same answer, with no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dragon.domain.failure_rules import RULES, FailureClass
from dragon.domain.risk import RiskFactor

ANALYZER_NAME = "dragon-builtin"
ANALYZER_VERSION = "1.0.0"
MAX_LINES = 5000  # the tail of a log carries its failure; bounding lines bounds the work
MAX_EVIDENCE = 8
MAX_EVIDENCE_CHARS = 300

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_DEFAULT_BRANCHES = frozenset({"main", "master", "trunk"})


@dataclass(frozen=True)
class Evidence:
    line: int  # 1-based, in the text the analyzer read
    text: str
    rule: str
    weight: int

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text, "rule": self.rule, "weight": self.weight}


@dataclass(frozen=True)
class Classification:
    failure_class: FailureClass
    confidence: float
    evidence: tuple[Evidence, ...]
    scores: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TriageContext:
    """What the analyzer knows about the failure besides its text."""

    source: str | None = None
    kind: str | None = None  # a SignalKind value; None for free text
    repo: str | None = None
    branch: str | None = None
    commit_sha: str | None = None
    environment: str | None = None
    pipeline: str | None = None
    job: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    signal_count: int = 1
    runbooks: Mapping[str, str] = field(default_factory=dict)  # alertname -> runbook

    @property
    def is_alert(self) -> bool:
        return self.kind == "alert_firing" or self.source == "alertmanager"


@dataclass(frozen=True)
class ActionProposal:
    action: str
    params: dict[str, Any]
    rationale: str
    impact: str
    automatic: bool  # False: the rules want a person to act, Dragon only tells them


def log_lines(text: str) -> list[str]:
    """The log as the analyzer reads it: its tail, without runner timestamps or colour codes."""
    lines = text.splitlines()[-MAX_LINES:]
    return [_ANSI.sub("", _TIMESTAMP.sub("", line)).rstrip() for line in lines]


def classify(text: str) -> Classification:
    lines = log_lines(text)
    scores: dict[FailureClass, int] = {}
    found: dict[FailureClass, list[Evidence]] = {}
    for rule in RULES:
        for number, line in enumerate(lines, start=1):
            if rule.pattern.search(line):
                scores[rule.failure_class] = scores.get(rule.failure_class, 0) + rule.weight
                found.setdefault(rule.failure_class, []).append(
                    Evidence(number, line.strip()[:MAX_EVIDENCE_CHARS], rule.name, rule.weight)
                )
                break  # a rule counts once, at its first line
    if not scores:
        return Classification(FailureClass.UNKNOWN, 0.2, (), {})
    # Ties go to the class listed first in FailureClass: a stable, documented order.
    order = list(FailureClass)
    ranked = sorted(scores.items(), key=lambda item: (-item[1], order.index(item[0])))
    winner, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    evidence = sorted(found[winner], key=lambda e: (-e.weight, e.line))[:MAX_EVIDENCE]
    return Classification(
        failure_class=winner,
        confidence=confidence_for(top, runner_up),
        evidence=tuple(sorted(evidence, key=lambda e: e.line)),
        scores={cls.value: score for cls, score in ranked},
    )


def confidence_for(top: int, runner_up: int) -> float:
    """Grows with the winning score and with its lead over the next class; 0.3 to 0.95."""
    strength = min(1.0, top / 20)
    lead = (top - runner_up) / top if top else 0.0
    return round(0.3 + 0.65 * strength * (0.4 + 0.6 * lead), 2)


def _ci_params(context: TriageContext) -> dict[str, Any]:
    params: dict[str, Any] = {
        "provider": context.source,
        "repo": context.repo,
        "branch": context.branch,
        "commit_sha": context.commit_sha,
        "pipeline": context.pipeline,
        "job": context.job,
    }
    for key in ("run_id", "job_id", "pipeline_id", "project_id", "build_number", "job_name"):
        if context.labels.get(key):
            params[key] = context.labels[key]
    return {k: v for k, v in params.items() if v is not None}


def _starts_on_default_branch(context: TriageContext) -> bool:
    """The failure started with a commit on the default branch: first signal, known commit."""
    return (
        context.branch in _DEFAULT_BRANCHES
        and bool(context.commit_sha)
        and context.signal_count <= 1
    )


# What an analyzer may propose for a failure: a model's answer outside this set is discarded.
TRIAGE_ACTIONS = frozenset(
    {
        "rerun_failed_jobs",
        "autofix_pull_request",
        "revert_pull_request",
        "run_runbook",
        "notify_owners",
        "escalate",
    }
)
_ADVISORY_ACTIONS = frozenset({"notify_owners", "escalate"})


def runbook_for(context: TriageContext) -> str | None:
    alertname = context.labels.get("alertname", "")
    return context.labels.get("runbook") or context.runbooks.get(alertname) or None


def proposal_for(
    action: str, context: TriageContext, classification: Classification, *, rationale: str
) -> ActionProposal | None:
    """A proposal for an action another analyzer chose, with parameters taken from the facts
    (never from that analyzer); None when the facts cannot support the action."""
    if action not in TRIAGE_ACTIONS:
        return None
    params = _ci_params(context)
    if action == "run_runbook":
        runbook = runbook_for(context)
        if runbook is None:
            return None
        params = {"runbook": runbook, "alertname": context.labels.get("alertname", "")}
    if action == "revert_pull_request" and not context.commit_sha:
        return None
    if action in _ADVISORY_ACTIONS:
        params = {**params, "classification": classification.failure_class.value}
    spec_impact = {
        "rerun_failed_jobs": "reruns the failed jobs of the same commit",
        "autofix_pull_request": "opens a pull request with the formatter's changes",
        "revert_pull_request": f"opens a pull request reverting {context.commit_sha}",
        "run_runbook": f"runs the steps of runbook {params.get('runbook')}",
        "notify_owners": "notifies the owners; nothing is changed",
        "escalate": "pages the on-call responder; nothing is changed",
    }
    return ActionProposal(
        action,
        params,
        rationale,
        spec_impact[action],
        automatic=action not in _ADVISORY_ACTIONS,
    )


def propose(context: TriageContext, classification: Classification) -> ActionProposal:
    """The issue's action rules, in order; every proposal names a catalog action."""
    cls = classification.failure_class
    label = cls.value.replace("_", " ")
    if context.is_alert:
        alertname = context.labels.get("alertname", "")
        runbook = runbook_for(context)
        if runbook:
            return ActionProposal(
                "run_runbook",
                {"runbook": runbook, "alertname": alertname, "labels": dict(context.labels)},
                f"alert {alertname or 'without a name'} is mapped to runbook {runbook}",
                f"runs the steps of runbook {runbook}",
                automatic=True,
            )
        return ActionProposal(
            "escalate",
            {"alertname": alertname, "reason": "no runbook is mapped to this alert"},
            f"alert {alertname or 'without a name'} has no runbook; a responder must look",
            "pages the on-call responder; nothing is changed",
            automatic=False,
        )
    params = _ci_params(context)
    if cls is FailureClass.LINT_FORMAT:
        return ActionProposal(
            "autofix_pull_request",
            params,
            "the job failed on lint or formatting only; a formatter can fix it",
            "opens a pull request with the formatter's changes; nothing merges without review",
            automatic=True,
        )
    if cls is FailureClass.FLAKY_INFRASTRUCTURE:
        return ActionProposal(
            "rerun_failed_jobs",
            params,
            "the failure points to the infrastructure (network, timeout, runner), not the change",
            "reruns the failed jobs of the same commit",
            automatic=True,
        )
    if cls in (FailureClass.TEST_FAILURE, FailureClass.COMPILE_ERROR) and (
        _starts_on_default_branch(context)
    ):
        return ActionProposal(
            "revert_pull_request",
            params,
            f"a {label} started with commit {context.commit_sha} on {context.branch}; "
            "reverting it is a candidate fix",
            f"opens a pull request reverting {context.commit_sha}; nothing merges without review",
            automatic=True,
        )
    reason = {
        FailureClass.MISSING_PERMISSION: (
            "a permission or secret is missing; only a person can grant it"
        ),
        FailureClass.CONFIGURATION_ERROR: "a configuration file is invalid; its owners must fix it",
    }.get(cls, f"a {label} needs its owners; no automatic action is safe")
    return ActionProposal(
        "notify_owners",
        {**params, "classification": cls.value, "reason": reason},
        reason,
        "notifies the owners; nothing is changed",
        automatic=False,
    )


_SECRET_SHAPES = (
    re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)\b([A-Z0-9_]*(?:token|secret|passw(?:or)?d|api[_-]?key|access[_-]?key))"
        r"(\s*[:=]\s*)['\"]?[^\s'\"]{4,}"
    ),
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,})"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bxox[abprs]-[\w-]{10,}"),
    re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"),
)


def redact(text: str) -> str:
    """Blank what looks like a credential before a log line is kept as evidence: logs are
    untrusted and may carry secrets, and evidence reaches the audit log and approvers."""
    text = _SECRET_SHAPES[0].sub(lambda m: f"{m.group(1)} [REDACTED]", text)
    text = _SECRET_SHAPES[1].sub(lambda m: f"{m.group(1)}{m.group(2)}[REDACTED]", text)
    text = _SECRET_SHAPES[2].sub("[REDACTED]", text)
    text = _SECRET_SHAPES[3].sub("[REDACTED]", text)
    return _SECRET_SHAPES[4].sub(lambda m: f"{m.group(1)}[REDACTED]@", text)


def input_hash(text: str, context: TriageContext) -> str:
    """Identifies exactly what the analyzer was given, for provenance."""
    facts = "\x1f".join(
        str(v)
        for v in (
            context.source,
            context.kind,
            context.repo,
            context.branch,
            context.commit_sha,
            context.environment,
            context.signal_count,
            sorted(context.labels.items()),
        )
    )
    return "sha256:" + hashlib.sha256(f"{facts}\x1e{text}".encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """One analyzer's answer: what failed, why it thinks so, what to do, and how it got there.
    `extra_factors` can only add risk; the built-in floor is applied by whoever scores it."""

    classification: Classification
    proposal: ActionProposal
    provenance: dict[str, Any]
    extra_factors: tuple[RiskFactor, ...] = ()
    # The built-in analysis an LLM's answer is held to: its risk is the floor.
    baseline: Analysis | None = None


def analyze(text: str, context: TriageContext) -> Analysis:
    """The built-in analyzer end to end: classification, evidence (redacted), proposal."""
    found = classify(text)
    found = Classification(
        failure_class=found.failure_class,
        confidence=found.confidence,
        evidence=tuple(Evidence(e.line, redact(e.text), e.rule, e.weight) for e in found.evidence),
        scores=found.scores,
    )
    return Analysis(
        classification=found,
        proposal=propose(context, found),
        provenance={
            "analyzer": ANALYZER_NAME,
            "analyzer_version": ANALYZER_VERSION,
            "model": None,
            "prompt_hash": None,
            "input_hash": input_hash(text, context),
            "tokens": None,
        },
    )
