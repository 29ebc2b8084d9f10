"""Execution use cases: approved decisions become runs, and runs act, at most once.

A pass of the worker (1) schedules a run for each runnable decision that has none, (2) claims
due runs, checking guarantee 3, the kill switch and the blast radius in the same transaction
that marks them running, (3) calls the action's handler outside any transaction, and (4)
records the outcome, with its audit events, in one more transaction. A run's idempotency key
is unique in the store, and a handler looks for what an earlier attempt left behind before it
acts, so retries, crashes and racing workers never act twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from dragon.domain.clock import Clock
from dragon.domain.entities import Decision, Run
from dragon.domain.enums import DecisionStatus, RunStatus
from dragon.domain.errors import DragonError, ErrorKind, NotFound
from dragon.domain.execution import (
    ActionFailed,
    ActionHandler,
    ActionRequest,
    ExecutionRefused,
    approvers_of,
    authorize,
    idempotency_key,
    log_entry,
    repo_limit_reached,
    transition_run,
)
from dragon.domain.ids import new_id
from dragon.domain.ports import RunQuery, UnitOfWork, UnitOfWorkFactory
from dragon.domain.transitions import RUNNABLE, transition_decision
from dragon.services.actions_switch import ActionsSwitchService
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER
from dragon.services.policies import PolicyService
from dragon.services.run_records import (
    audit_decision,
    fail,
    refuse,
    retry_later,
    succeed,
)
from dragon.services.run_retention import Pruned, prune_runs
from dragon.traces import span

# run id, lease, dry run, request, the decision's trace context
Claimed = tuple[str, datetime, bool, ActionRequest, str | None]
log = structlog.get_logger("dragon.runs")
WINDOW = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class ExecutionSettings:
    lease_seconds: float = 300.0
    max_attempts: int = 5
    public_url: str = "http://127.0.0.1:8000"
    retention_count: int = 1000
    retention_age: timedelta = timedelta(days=30)


class RunStepLog:
    """A handler's step log; checkpoints are committed at once through `save`."""

    def __init__(self, *, clock: Clock, save: Any, fence: Any) -> None:
        self._clock = clock
        self._save = save
        self._fence = fence
        self._steps: list[dict[str, Any]] = []

    def step(self, step: str, status: str, *, detail: str = "", **data: Any) -> None:
        self._steps.append(log_entry(step, status, at=self._clock(), detail=detail, **data))

    def steps(self) -> list[dict[str, Any]]:
        return list(self._steps)

    async def checkpoint(self, **data: Any) -> None:
        await self._save(data, self.steps())

    async def fence(self) -> None:
        await self._fence()


def held_or_lost(run: Run, lease: datetime) -> None:
    """Raise `run_lease_lost` unless the attempt that took `lease` still holds `run`."""
    if run.status is not RunStatus.RUNNING or run.lease_expires_at != lease:
        raise ActionFailed("another worker took this run over", code="run_lease_lost")


async def load_run(uow: UnitOfWork, run_id: str, *, for_update: bool = False) -> Run:
    run = await uow.runs.get(run_id, for_update=for_update)
    if run is None:
        raise NotFound(f"no run {run_id}", code="run_not_found")
    return run


class RunService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        policies: PolicyService,
        switch: ActionsSwitchService,
        handlers: Mapping[str, ActionHandler],
        clock: Clock,
        settings: ExecutionSettings,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._closers = list(closers)
        self._uow = uow
        self._policies = policies
        self._switch = switch
        self._handlers = dict(handlers)
        self._clock = clock
        self._settings = settings

    async def close(self) -> None:
        """Close the integrations' shared HTTP clients."""
        for close in self._closers:
            await close()

    @property
    def executable_actions(self) -> list[str]:
        return sorted(self._handlers)

    async def get(self, run_id: str) -> Run:
        async with self._uow(write=False) as uow:
            return await load_run(uow, run_id)

    async def find(self, query: RunQuery) -> tuple[list[Run], str | None]:
        async with self._uow(write=False) as uow:
            return await uow.runs.find(query)

    # ---- (1) scheduling ------------------------------------------------------------------

    async def schedule(self, *, batch: int = 50) -> int:
        """Queue a run for each runnable decision whose action Dragon can execute."""
        if not self._handlers:
            return 0
        now = self._clock()
        queued = 0
        async with self._uow() as uow:
            dry_run = (await self._switch.state_in(uow)).dry_run
            for decision in await uow.runs.unscheduled(
                actions=self.executable_actions, limit=batch
            ):
                run = Run(
                    id=new_id("run", now),
                    decision_id=decision.id,
                    idempotency_key=idempotency_key(decision),
                    action=decision.action,
                    incident_id=decision.incident_id,
                    repo=decision.repo,
                    dry_run=dry_run,
                    max_attempts=self._settings.max_attempts,
                    next_attempt_at=now,
                    log=[log_entry("queued", "ok", at=now)],
                    created_at=now,
                    updated_at=now,
                )
                if await uow.runs.add_if_new(run):
                    queued += 1
                    await record(
                        uow,
                        SYSTEM_CALLER,
                        action="run.queued",
                        target_type="run",
                        target_id=run.id,
                        now=now,
                        details={
                            "decision_id": decision.id,
                            "action": run.action,
                            "idempotency_key": run.idempotency_key,
                            "dry_run": dry_run,
                        },
                    )
            await uow.commit()
        return queued

    # ---- (2) claiming --------------------------------------------------------------------

    async def run_due(self, *, batch: int = 5) -> int:
        """Claim due runs and carry each out; returns how many were claimed."""
        claimed = await self._claim(batch)
        for run_id, lease, dry_run, request, trace_context in claimed:
            # Continues the trace of the triage that proposed the decision: the action's
            # outbound calls are its children.
            with span(
                f"run {request.action}",
                parent=trace_context,
                attributes={"dragon.run_id": run_id, "dragon.decision_id": request.decision_id},
            ):
                log.info(
                    "run_started", run_id=run_id, action=request.action, attempt=request.attempt
                )
                await self._execute(run_id, lease=lease, dry_run=dry_run, request=request)
        return len(claimed)

    async def _claim(self, batch: int) -> list[Claimed]:
        now = self._clock()
        claimed: list[Claimed] = []
        async with self._uow() as uow:
            if not (await self._switch.state_in(uow)).enabled:
                return []  # runs wait, queued, until actions are turned back on
            for run in await uow.runs.claim_due(now=now, limit=batch):
                decision = await uow.decisions.get(run.decision_id, for_update=True)
                assert decision is not None  # a run's decision is a foreign key
                request = await self._start(uow, run, decision, now=now)
                if request is not None:
                    assert run.lease_expires_at is not None
                    claimed.append(
                        (run.id, run.lease_expires_at, run.dry_run, request, decision.trace_context)
                    )
            await uow.commit()
        return claimed

    async def _start(
        self, uow: UnitOfWork, run: Run, decision: Decision, *, now: datetime
    ) -> ActionRequest | None:
        """Move a claimed run to running; None (and the run failed) when it may not run."""
        recovering = run.status is RunStatus.RUNNING
        if recovering and run.attempts >= run.max_attempts:
            # Each worker that took it died before recording anything: a run that kills its
            # worker every time is failed, not taken over once per lease forever.
            lost = ActionFailed(
                f"the worker carrying out run {run.id} was lost on each of its {run.attempts} "
                "attempts (its lease ran out with no outcome recorded); not trying again",
                code="run_worker_lost",
            )
            run.log = [*run.log, log_entry("recovered", "failed", at=now, detail=lost.message)]
            await fail(uow, run, decision, lost, now=now)
            return None
        approvals = await uow.approvals.for_decision(decision.id)
        try:
            if decision.status in RUNNABLE:
                known = await uow.policies.by_version(decision.policy_version or "") is not None
                authorize(decision, approvals, known_policy=known)
            elif decision.status is not DecisionStatus.EXECUTING or run.attempts == 0:
                authorize(decision, approvals, known_policy=False)  # raises: not runnable
            if decision.status in RUNNABLE and run.repo and not run.dry_run:
                await self._check_blast_radius(uow, run, now=now)
        except (ExecutionRefused, ActionFailed) as refused:
            await refuse(uow, run, decision, refused, now=now)
            return None
        if decision.status in RUNNABLE:
            transition_decision(decision, DecisionStatus.EXECUTING, now=now)
            await audit_decision(uow, decision, now=now, run=run)
        if recovering:
            run.log = [*run.log, log_entry("recovered", "ok", at=now, detail="lease expired")]
        else:
            transition_run(run, RunStatus.RUNNING, now=now)
        run.attempts += 1
        run.lease_expires_at = now + timedelta(seconds=self._settings.lease_seconds)
        run.log = [*run.log, log_entry("attempt", "started", at=now, attempt=run.attempts)]
        await record(
            uow,
            SYSTEM_CALLER,
            action="run.started",
            target_type="run",
            target_id=run.id,
            now=now,
            details={"attempt": run.attempts, "recovered": recovering, "dry_run": run.dry_run},
        )
        return ActionRequest(
            run_id=run.id,
            idempotency_key=run.idempotency_key,
            action=run.action,
            params=dict(decision.params),
            decision_id=decision.id,
            incident_id=decision.incident_id,
            repo=decision.repo,
            branch=decision.branch,
            source=decision.source,
            policy_version=decision.policy_version,
            policy_rule=decision.policy_rule,
            approvers=approvers_of(approvals),
            links=self._links(decision, run),
            attempt=run.attempts,
            checkpoint=dict(run.result.get("checkpoint", {})),
        )

    def _links(self, decision: Decision, run: Run) -> dict[str, str]:
        base = self._settings.public_url.rstrip("/")
        links = {
            "decision": f"{base}/api/v1/decisions/{decision.id}",
            "run": f"{base}/api/v1/runs/{run.id}",
        }
        if decision.incident_id:
            links["incident"] = f"{base}/api/v1/incidents/{decision.incident_id}"
        return links

    async def _check_blast_radius(self, uow: UnitOfWork, run: Run, *, now: datetime) -> None:
        assert run.repo is not None
        limit = (await self._policies.active_in(uow)).actions_per_repo_per_hour
        if limit is None:
            return
        await uow.runs.lock_repo(run.repo)
        recent = await uow.runs.started_since(repo=run.repo, since=now - WINDOW)
        if repo_limit_reached(recent=recent, limit=limit):
            raise ActionFailed(
                f"{recent} actions already ran on {run.repo} in the last hour; the policy "
                f"allows {limit} (limits.actions_per_repo_per_hour)",
                code="blast_radius_exceeded",
            )

    async def _execute(
        self, run_id: str, *, lease: datetime, dry_run: bool, request: ActionRequest
    ) -> None:
        steps = RunStepLog(
            clock=self._clock,
            save=self._checkpoint_saver(run_id, lease),
            fence=self._lease_fence(run_id, lease),
        )
        result: dict[str, Any] | None = None
        failure: ActionFailed | None = None
        try:
            if dry_run:
                result = self._dry_run(request, steps)
            else:
                async with asyncio.timeout(self._settings.lease_seconds * 0.9):
                    result = await self._handlers[request.action](request, steps)
        except ActionFailed as exc:
            failure = exc
        except TimeoutError:
            failure = ActionFailed(
                "the action did not finish within its lease", code="action_timeout", retryable=True
            )
        except DragonError as exc:
            # An open circuit or an unreachable dependency: worth another attempt later.
            failure = ActionFailed(
                exc.message, code=exc.code, retryable=exc.kind is ErrorKind.UNAVAILABLE
            )
        except Exception as exc:  # a handler bug fails its run, never the worker
            log.exception("action_crashed", run_id=run_id, error_type=type(exc).__name__)
            failure = ActionFailed(
                f"the action failed unexpectedly ({type(exc).__name__})", code="action_crashed"
            )
        await self._record(run_id, lease=lease, steps=steps, result=result, failure=failure)

    def _dry_run(self, request: ActionRequest, steps: RunStepLog) -> dict[str, Any]:
        would = {
            "action": request.action,
            "repo": request.repo,
            "branch": request.branch,
            "params": request.params,
            "idempotency_key": request.idempotency_key,
        }
        steps.step("dry_run", "skipped", detail="dry-run mode: nothing was changed", would=would)
        return {"dry_run": True, "would": would}

    def _lease_fence(self, run_id: str, lease: datetime) -> Any:
        async def fence() -> None:
            async with self._uow() as uow:
                held_or_lost(await load_run(uow, run_id), lease)

        return fence

    def _checkpoint_saver(self, run_id: str, lease: datetime) -> Any:
        async def save(data: dict[str, Any], steps: list[dict[str, Any]]) -> None:
            async with self._uow() as uow:
                run = await load_run(uow, run_id, for_update=True)
                held_or_lost(run, lease)
                checkpoint = {**run.result.get("checkpoint", {}), **data}
                run.result = {**run.result, "checkpoint": checkpoint}
                run.updated_at = self._clock()
                await uow.commit()

        return save

    async def _record(
        self,
        run_id: str,
        *,
        lease: datetime,
        steps: RunStepLog,
        result: dict[str, Any] | None,
        failure: ActionFailed | None,
    ) -> None:
        now = self._clock()
        async with self._uow() as uow:
            run = await load_run(uow, run_id, for_update=True)
            if run.status is not RunStatus.RUNNING or run.lease_expires_at != lease:
                # Our lease ran out and another worker holds the run now: its word counts.
                log.warning("run_lease_lost", run_id=run_id)
                return
            decision = await uow.decisions.get(run.decision_id, for_update=True)
            assert decision is not None
            run.log = [*run.log, *steps.steps()]
            if failure is None:
                await succeed(uow, run, decision, result or {}, now=now)
            elif failure.retryable and run.attempts < run.max_attempts:
                await retry_later(uow, run, failure, now=now)
            else:
                await fail(uow, run, decision, failure, now=now)
            await uow.commit()

    async def prune(self, *, dry_run: bool = False, show: int = 0) -> Pruned:
        """The retention pass (services.run_retention) under this process's settings."""
        return await prune_runs(
            self._uow,
            clock=self._clock,
            keep=self._settings.retention_count,
            age=self._settings.retention_age,
            dry_run=dry_run,
            show=show,
        )
