"""Executing approved decisions: who may run, run states, retry timing, and action failures.

    ActionFailed            an action could not be carried out (a DragonError, kind: invalid)
    ├── retryable=True      timeouts, refused connections, 429 and 5xx: tried again with backoff
    └── retryable=False     the vendor refused (4xx): the run fails with the vendor's message

Guarantee 3 (ARCHITECTURE.md) lives in `authorize`: nothing runs unless its decision is
approved (or auto-approved) under the policy version recorded on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from dragon.domain.entities import Approval, Decision, Run
from dragon.domain.enums import RunStatus, Verdict
from dragon.domain.errors import Conflict, DragonError, ErrorKind, InvalidTransition
from dragon.domain.transitions import RUNNABLE

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.FAILED}),
    # Back to queued: a retryable failure waits for its next attempt.
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.QUEUED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
}
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(minutes=15)
MAX_LOG_ENTRIES = 200
MAX_LOG_TEXT = 4000


class ActionFailed(DragonError):
    kind = ErrorKind.INVALID
    default_code = "action_failed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, code=code, **details)
        self.retryable = retryable
        self.retry_after = retry_after


class ExecutionRefused(Conflict):
    """The decision may not run (guarantee 3); its run fails without touching anything."""

    default_code = "execution_refused"


def idempotency_key(decision: Decision) -> str:
    """One key per decision and action: the store keeps it unique, vendors see it too."""
    digest = hashlib.sha256(f"{decision.id}:{decision.action}".encode()).hexdigest()[:32]
    return f"dragon-{digest}"


def authorize(decision: Decision, approvals: Sequence[Approval], *, known_policy: bool) -> None:
    """Refuse unless the decision is runnable under the policy version recorded on it."""
    if decision.status not in RUNNABLE:
        raise ExecutionRefused(
            f"decision {decision.id} is {decision.status}; only approved or auto_approved "
            "decisions run",
            code="execution_refused",
            status=decision.status.value,
        )
    if not decision.policy_version or not known_policy:
        raise ExecutionRefused(
            f"decision {decision.id} names no stored policy version; it cannot run",
            code="execution_policy_unknown",
        )
    approving = {a.principal_id for a in approvals if a.verdict is Verdict.APPROVE}
    rejected = any(a.verdict is Verdict.REJECT for a in approvals)
    if rejected or len(approving) < decision.approvals_required:
        raise ExecutionRefused(
            f"decision {decision.id} has {len(approving)} of {decision.approvals_required} "
            "approvals its policy rule requires",
            code="execution_approvals_missing",
        )


def transition_run(run: Run, to: RunStatus, *, now: datetime) -> RunStatus:
    before = run.status
    if to not in RUN_TRANSITIONS[before]:
        raise InvalidTransition(
            f"run {run.id} is {before}; it cannot become {to}",
            code="run_transition_invalid",
            current=before.value,
            requested=to.value,
        )
    run.status = to
    run.updated_at = now
    if to is RunStatus.RUNNING and run.started_at is None:
        run.started_at = now
    if to in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        run.finished_at = now
        run.lease_expires_at = None
    return before


def next_attempt_delay(attempts: int, *, retry_after: float | None = None) -> timedelta:
    """Exponential backoff from the attempt count, never sooner than the vendor asked."""
    delay = min(BACKOFF_BASE * (1 << max(attempts - 1, 0)), BACKOFF_CAP)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=min(retry_after, BACKOFF_CAP.total_seconds())))
    return delay


def log_entry(
    step: str, status: str, *, at: datetime, detail: str = "", **data: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": at.isoformat(), "step": step, "status": status}
    if detail:
        entry["detail"] = detail[:MAX_LOG_TEXT]
    entry.update(data)
    return entry


@dataclass(frozen=True, kw_only=True)
class ActionRequest:
    """Everything an action handler may know: the approved decision's facts and its links."""

    run_id: str
    idempotency_key: str
    action: str
    params: dict[str, Any]
    decision_id: str
    incident_id: str | None
    repo: str | None
    branch: str | None
    source: str | None
    policy_version: str | None
    policy_rule: str | None
    approvers: tuple[str, ...] = ()
    links: dict[str, str] = field(default_factory=dict)
    attempt: int = 1
    # What earlier attempts saved with `StepLog.checkpoint` before a remote call.
    checkpoint: dict[str, Any] = field(default_factory=dict)


class StepLog(Protocol):
    """Where a handler writes what it does, step by step."""

    def step(self, step: str, status: str, *, detail: str = "", **data: Any) -> None: ...

    def steps(self) -> list[dict[str, Any]]: ...

    async def checkpoint(self, **data: Any) -> None:
        """Store `data` durably now, before a call that cannot be looked up afterwards; a
        later attempt finds it in `ActionRequest.checkpoint`."""
        ...

    async def fence(self) -> None:
        """Fail with `run_lease_lost` if this attempt no longer holds its run: called right
        before a call that changes something, so a worker that stalled past its lease (and
        whose run another worker took over) does not act as well."""
        ...


class ActionHandler(Protocol):
    """Carries out one action. Must be safe to call again after a crash: it looks for what an
    earlier attempt left behind (a branch, a pull request, a marked comment) before acting."""

    async def __call__(self, request: ActionRequest, log: StepLog) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ActionsState:
    """Whether actions may run now, and why not."""

    enabled: bool
    setting_enabled: bool
    switch_enabled: bool
    dry_run: bool
    reason: str = ""


def repo_limit_reached(*, recent: int, limit: int | None) -> bool:
    return limit is not None and recent >= limit


def approvers_of(approvals: Collection[Approval]) -> tuple[str, ...]:
    return tuple(a.principal_name for a in approvals if a.verdict is Verdict.APPROVE)


VENDOR_SOURCES = frozenset({"github", "gitlab", "jenkins"})


class BySource:
    """One action, carried out by the vendor the decision came from; decisions from elsewhere
    (the API, an alert) go to GitHub."""

    def __init__(self, handlers: dict[str, ActionHandler], *, default: str = "github") -> None:
        self._handlers = handlers
        self._default = default

    async def __call__(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        source = request.source if request.source in VENDOR_SOURCES else self._default
        handler = self._handlers.get(source or "")
        if handler is None:
            raise ActionFailed(
                f"{request.action} cannot be executed for source {request.source!r}: no vendor "
                f"configured (configured: {', '.join(sorted(self._handlers)) or 'none'})",
                code="action_vendor_unconfigured",
            )
        return await handler(request, log)
