"""The action catalog: every remediation Dragon knows, with its base risk.

A decision may only name an action listed here. `destructive` marks actions that change a
branch or an environment directly rather than proposing a change for review.
"""

from __future__ import annotations

from dataclasses import dataclass

from dragon.domain.errors import ValidationFailed


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str
    base_risk: int
    destructive: bool = False


CATALOG: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec("rerun_job", "Rerun the failed jobs of a CI run", base_risk=10),
        ActionSpec("open_autofix_pr", "Open a draft pull request with a formatter's fix", 20),
        ActionSpec("open_revert_pr", "Open a pull request reverting a commit", 35),
        ActionSpec("run_runbook", "Run a registered runbook", 30),
        ActionSpec("comment", "Comment on a pull request or commit", 5),
        ActionSpec("notify_owners", "Notify the owners; no change is made", 0),
        ActionSpec("escalate", "Escalate to the on-call responder", 0),
        ActionSpec("read_console", "Read a CI build's console output; no change is made", 0),
        # Proposed by triage (dragon.domain.triage); names are stable for the executors.
        ActionSpec("rerun_failed_jobs", "Rerun only the failed jobs of a CI run", 10),
        ActionSpec(
            "autofix_pull_request", "Open a pull request with a linter's or formatter's fix", 20
        ),
        ActionSpec("revert_pull_request", "Open a pull request reverting the failing commit", 35),
        ActionSpec("revert_commit", "Push a revert commit to the branch", 60, destructive=True),
        ActionSpec(
            "rollback_deployment",
            "Roll an environment back to the previous release",
            55,
            destructive=True,
        ),
    )
}


def action_spec(name: str) -> ActionSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise ValidationFailed(
            f"unknown action {name!r}; the catalog has: {', '.join(sorted(CATALOG))}",
            code="action_unknown",
        ) from None
