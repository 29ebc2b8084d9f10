"""The outcome check: after an action on a CI failure, the next CI result on the same
fingerprint says whether it worked. A recovery records "fixed by <run>"; another failure
records "did not help" and escalates, through a decision under policy like any other."""

from __future__ import annotations

import structlog

from dragon.domain.clock import Clock
from dragon.domain.entities import Run
from dragon.domain.ports import UnitOfWork, UnitOfWorkFactory
from dragon.domain.signals import SignalKind
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER
from dragon.services.decisions import DecisionService, Proposal
from dragon.services.outbox import notify

log = structlog.get_logger("dragon.outcomes")
FIXED, DID_NOT_HELP = "fixed", "did_not_help"
ESCALATE = "escalate"


class OutcomeService:
    def __init__(self, uow: UnitOfWorkFactory, *, decisions: DecisionService, clock: Clock) -> None:
        self._uow = uow
        self._decisions = decisions
        self._clock = clock

    async def check(self, *, batch: int = 50) -> int:
        """Record the outcome of every finished CI action whose next CI result has arrived;
        returns how many it recorded."""
        escalate: list[Run] = []
        recorded = 0
        async with self._uow() as uow:
            for run, fingerprint in await uow.runs.awaiting_outcome(limit=batch):
                assert run.finished_at is not None
                signal = await uow.runs.next_ci_signal(fingerprint, after=run.finished_at)
                if signal is None:
                    continue
                outcome = FIXED if signal.kind == SignalKind.CI_RECOVERY else DID_NOT_HELP
                await self._record(uow, run, outcome=outcome, signal_id=signal.id)
                recorded += 1
                if outcome == DID_NOT_HELP:
                    escalate.append(run)
            await uow.commit()
        for run in escalate:
            await self._escalate(run)
        return recorded

    async def _record(self, uow: UnitOfWork, run: Run, *, outcome: str, signal_id: str) -> None:
        now = self._clock()
        run.outcome, run.outcome_at = outcome, now
        text = f"fixed by {run.id}" if outcome == FIXED else f"{run.id} did not help"
        details = {"outcome": outcome, "summary": text, "run_id": run.id, "signal_id": signal_id}
        await record(
            uow,
            SYSTEM_CALLER,
            action="run.outcome_recorded",
            target_type="run",
            target_id=run.id,
            now=now,
            details=details,
        )
        assert run.incident_id is not None
        await record(
            uow,
            SYSTEM_CALLER,
            action=f"incident.{outcome}",
            target_type="incident",
            target_id=run.incident_id,
            now=now,
            details=details,
        )
        if outcome == DID_NOT_HELP:
            incident = await uow.incidents.get(run.incident_id)
            await notify(
                uow, event="incident.did_not_help", now=now, incident=incident, details=details
            )

    async def _escalate(self, run: Run) -> None:
        """ "Did not help": hand it to a person. The escalation is itself a decision, so policy
        and the audit log see it; the notification engineer's channels deliver it."""
        assert run.incident_id is not None
        decision = await self._decisions.propose(
            SYSTEM_CALLER,
            Proposal(
                action=ESCALATE,
                title=f"{run.action} did not fix the failure; escalate",
                incident_id=run.incident_id,
                rationale=f"the next CI result after {run.id} failed again",
                provenance={"via": "outcome_check", "run_id": run.id},
            ),
        )
        log.info("outcome_escalated", run_id=run.id, decision_id=decision.id)
