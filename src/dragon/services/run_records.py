"""How a run's state changes are recorded: each with its audit events, and the decision's
transition beside it, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dragon.domain.entities import Decision, Run
from dragon.domain.enums import DecisionStatus, RunStatus
from dragon.domain.errors import DragonError
from dragon.domain.execution import (
    ActionFailed,
    log_entry,
    next_attempt_delay,
    transition_run,
)
from dragon.domain.ports import UnitOfWork
from dragon.domain.transitions import RUNNABLE, transition_decision
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER
from dragon.services.outbox import notify


async def audit_decision(
    uow: UnitOfWork, decision: Decision, *, now: datetime, run: Run, code: str = ""
) -> None:
    details: dict[str, Any] = {"run_id": run.id}
    if code:
        details["code"] = code
    await record(
        uow,
        SYSTEM_CALLER,
        action=f"decision.{decision.status.value}",
        target_type="decision",
        target_id=decision.id,
        now=now,
        details=details,
    )


# ---- (3) acting and (4) recording ----------------------------------------------------


async def refuse(
    uow: UnitOfWork, run: Run, decision: Decision, why: DragonError, *, now: datetime
) -> None:
    transition_run(run, RunStatus.FAILED, now=now)
    run.error_code, run.error = why.code, why.message
    run.log = [*run.log, log_entry("refused", "failed", at=now, detail=why.message)]
    await record(
        uow,
        SYSTEM_CALLER,
        action="run.refused",
        target_type="run",
        target_id=run.id,
        now=now,
        details={"code": why.code, "reason": why.message, "decision_id": decision.id},
    )
    if decision.status in RUNNABLE:
        # It never started: the decision is moved through executing to failed, so its
        # record says it was approved, tried, and did not run.
        transition_decision(decision, DecisionStatus.EXECUTING, now=now)
        await audit_decision(uow, decision, now=now, run=run)
    if decision.status is DecisionStatus.EXECUTING:
        transition_decision(decision, DecisionStatus.FAILED, now=now)
        await audit_decision(uow, decision, now=now, run=run, code=why.code)


async def succeed(
    uow: UnitOfWork,
    run: Run,
    decision: Decision,
    result: dict[str, Any],
    *,
    now: datetime,
) -> None:
    checkpoint = run.result.get("checkpoint")
    run.result = {**result, "checkpoint": checkpoint} if checkpoint else dict(result)
    run.error_code = run.error = None
    transition_run(run, RunStatus.SUCCEEDED, now=now)
    run.log = [*run.log, log_entry("finished", "succeeded", at=now)]
    await record(
        uow,
        SYSTEM_CALLER,
        action="run.succeeded",
        target_type="run",
        target_id=run.id,
        now=now,
        details={"attempts": run.attempts, "result": public(result), "dry_run": run.dry_run},
    )
    transition_decision(decision, DecisionStatus.SUCCEEDED, now=now)
    await audit_decision(uow, decision, now=now, run=run)


async def retry_later(uow: UnitOfWork, run: Run, failure: ActionFailed, *, now: datetime) -> None:
    delay = next_attempt_delay(run.attempts, retry_after=failure.retry_after)
    transition_run(run, RunStatus.QUEUED, now=now)
    run.next_attempt_at = now + delay
    run.lease_expires_at = None
    run.error_code, run.error = failure.code, failure.message
    run.log = [
        *run.log,
        log_entry("attempt", "retrying", at=now, detail=failure.message, code=failure.code),
    ]
    await record(
        uow,
        SYSTEM_CALLER,
        action="run.retry_scheduled",
        target_type="run",
        target_id=run.id,
        now=now,
        details={
            "attempt": run.attempts,
            "code": failure.code,
            "error": failure.message,
            "next_attempt_at": run.next_attempt_at.isoformat(),
        },
    )


async def fail(
    uow: UnitOfWork, run: Run, decision: Decision, failure: ActionFailed, *, now: datetime
) -> None:
    transition_run(run, RunStatus.FAILED, now=now)
    run.error_code, run.error = failure.code, failure.message
    run.log = [
        *run.log,
        log_entry("finished", "failed", at=now, detail=failure.message, code=failure.code),
    ]
    await record(
        uow,
        SYSTEM_CALLER,
        action="run.failed",
        target_type="run",
        target_id=run.id,
        now=now,
        details={"attempts": run.attempts, "code": failure.code, "error": failure.message},
    )
    transition_decision(decision, DecisionStatus.FAILED, now=now)
    await audit_decision(uow, decision, now=now, run=run, code=failure.code)
    await notify(
        uow,
        event="run.failed",
        now=now,
        decision=decision,
        details={"run_id": run.id, "code": failure.code, "error": failure.message},
    )


# ---- retention -----------------------------------------------------------------------


def public(result: dict[str, Any]) -> dict[str, Any]:
    """What of a result goes into the audit log: its plain values, never a checkpoint."""
    return {
        k: v for k, v in result.items() if k != "checkpoint" and isinstance(v, str | int | bool)
    }
