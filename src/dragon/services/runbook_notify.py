"""The runbook step `notify`: one notification through the outbox, routed like every other
(by the incident's severity, source, repository and labels; `escalate` picks the escalation
route). It is queued in the same transaction that marks the step done on the run, so a retry or
a crash never queues it twice."""

from __future__ import annotations

from typing import Any

from dragon.domain.clock import Clock
from dragon.domain.execution import ActionFailed, ActionRequest, StepLog
from dragon.domain.notifications import RUNBOOK_NOTIFY
from dragon.domain.ports import UnitOfWorkFactory
from dragon.domain.runbooks import MAX_MESSAGE
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER
from dragon.services.outbox import notify
from dragon.services.runs import load_run

NOTIFIED = "notified"  # run.result.checkpoint.notified: step key -> outbox event id


class NotifyStep:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def __call__(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        message = request.params.get("message")
        if not isinstance(message, str) or not message.strip():
            raise ActionFailed("a notify step needs with.message", code="action_params_invalid")
        message = message.strip()[:MAX_MESSAGE]
        escalate = request.params.get("escalate") is True
        key = request.idempotency_key
        now = self._clock()
        async with self._uow() as uow:
            run = await load_run(uow, request.run_id, for_update=True)
            checkpoint = dict(run.result.get("checkpoint", {}))
            queued = dict(checkpoint.get(NOTIFIED, {}))
            if key in queued:
                log.step("notify", "reused", detail="an earlier attempt queued it")
                return {"event_id": queued[key], "reused": True}
            decision = await uow.decisions.get(request.decision_id)
            details = {"run_id": run.id, "step": key, "message": message}
            event_id = await notify(
                uow,
                event=RUNBOOK_NOTIFY,
                now=now,
                decision=decision,
                details=details,
                escalate=escalate,
            )
            queued[key] = event_id
            run.result = {**run.result, "checkpoint": {**checkpoint, NOTIFIED: queued}}
            run.updated_at = now
            await record(
                uow,
                SYSTEM_CALLER,
                action="run.notified",
                target_type="run",
                target_id=run.id,
                now=now,
                details={"event_id": event_id, "step": key, "escalate": escalate},
            )
            await uow.commit()
        route = "the escalation route" if escalate else "the incident's route"
        log.step("notify", "ok", detail=f"queued for {route}", event_id=event_id)
        return {"event_id": event_id, "escalate": escalate}
