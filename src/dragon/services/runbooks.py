"""Runbooks: register immutable manifest versions, start runs (as decisions under policy), and
carry a runbook's steps out one by one, resuming after the last step that finished."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dragon.domain.clock import Clock
from dragon.domain.entities import Decision, Runbook
from dragon.domain.errors import Conflict, NotFound
from dragon.domain.execution import ActionFailed, ActionHandler, ActionRequest, StepLog
from dragon.domain.ids import new_id
from dragon.domain.ports import UnitOfWork, UnitOfWorkFactory
from dragon.domain.runbooks import bind_parameters, render, validate_manifest
from dragon.services.audit_log import record
from dragon.services.context import Caller
from dragon.services.decisions import DecisionService, Proposal

RUN_RUNBOOK = "run_runbook"


async def load_runbook(uow: UnitOfWork, name: str, version: str | None) -> Runbook:
    if version:
        found = await uow.runbooks.get(name, version)
    else:
        versions = await uow.runbooks.versions(name)
        found = versions[0] if versions else None
    if found is None:
        at = f"@{version}" if version else ""
        raise NotFound(f"no runbook {name}{at}", code="runbook_not_found")
    return found


class RunbookService:
    def __init__(self, uow: UnitOfWorkFactory, *, decisions: DecisionService, clock: Clock) -> None:
        self._uow = uow
        self._decisions = decisions
        self._clock = clock

    async def register(self, caller: Caller, manifest: object) -> Runbook:
        checked = validate_manifest(manifest)
        now = self._clock()
        async with self._uow() as uow:
            if await uow.runbooks.get(checked["name"], checked["version"]) is not None:
                raise Conflict(
                    f"runbook {checked['name']}@{checked['version']} exists and versions are "
                    "immutable; register a new version",
                    code="runbook_version_exists",
                )
            runbook = Runbook(
                id=new_id("rbk", now),
                name=checked["name"],
                version=checked["version"],
                description=checked["description"],
                manifest=checked,
                created_at=now,
                created_by=caller.principal.id,
            )
            await uow.runbooks.add(runbook)
            await record(
                uow,
                caller,
                action="runbook.registered",
                target_type="runbook",
                target_id=runbook.id,
                now=now,
                details={
                    "name": runbook.name,
                    "version": runbook.version,
                    "steps": [s["action"] for s in checked["steps"]],
                },
            )
            await uow.commit()
        return runbook

    async def latest(self) -> list[Runbook]:
        async with self._uow(write=False) as uow:
            return await uow.runbooks.all_latest()

    async def versions(self, name: str) -> list[Runbook]:
        async with self._uow(write=False) as uow:
            found = await uow.runbooks.versions(name)
        if not found:
            raise NotFound(f"no runbook {name}", code="runbook_not_found")
        return found

    async def start(
        self,
        caller: Caller,
        name: str,
        *,
        version: str | None,
        parameters: dict[str, Any],
        incident_id: str | None = None,
        repo: str | None = None,
        branch: str | None = None,
        environment: str | None = None,
    ) -> Decision:
        """Propose running the runbook: the decision goes through policy like any other."""
        async with self._uow(write=False) as uow:
            runbook = await load_runbook(uow, name, version)
        bound = bind_parameters(runbook.manifest, parameters)
        return await self._decisions.propose(
            caller,
            Proposal(
                action=RUN_RUNBOOK,
                title=f"Run runbook {runbook.name}@{runbook.version}",
                incident_id=incident_id,
                params={
                    "runbook": runbook.name,
                    "version": runbook.version,
                    "parameters": bound,
                    **({"repo": repo} if repo else {}),
                },
                rationale=runbook.description,
                repo=repo,
                branch=branch,
                environment=environment,
                provenance={"via": "runbook", "runbook_id": runbook.id},
            ),
        )


class _StepLog:
    """One runbook step's view of the run's log: its entries are prefixed with the step id and
    its checkpoints kept apart from the other steps'."""

    def __init__(self, log: StepLog, step_id: str, saved: dict[str, Any]) -> None:
        self._log = log
        self._id = step_id
        self._saved = saved

    def step(self, step: str, status: str, *, detail: str = "", **data: Any) -> None:
        self._log.step(f"{self._id}.{step}", status, detail=detail, **data)

    def steps(self) -> list[dict[str, Any]]:
        return self._log.steps()

    async def checkpoint(self, **data: Any) -> None:
        self._saved[self._id] = {**self._saved.get(self._id, {}), **data}
        await self._log.checkpoint(steps=self._saved)

    async def fence(self) -> None:
        await self._log.fence()


class RunbookHandler:
    """The `run_runbook` action: each step through the handler of its action."""

    def __init__(self, uow: UnitOfWorkFactory, *, steps: Mapping[str, ActionHandler]) -> None:
        self._uow = uow
        self._steps = dict(steps)

    async def __call__(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        name, version = request.params.get("runbook"), request.params.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise ActionFailed(
                "params.runbook and params.version are needed", code="action_params_invalid"
            )
        async with self._uow(write=False) as uow:
            runbook = await load_runbook(uow, name, version)
        params = dict(request.params.get("parameters") or {})
        done: list[str] = list(request.checkpoint.get("completed_steps", []))
        saved: dict[str, Any] = dict(request.checkpoint.get("steps", {}))
        # What finished steps returned, kept so the run's result lists every step's.
        results: dict[str, Any] = dict(request.checkpoint.get("step_results", {}))
        for step in runbook.manifest["steps"]:
            step_id, action = step["id"], step["action"]
            if step_id in done:
                log.step(step_id, "reused", detail="finished by an earlier attempt")
                continue
            handler = self._steps.get(action)
            if handler is None:
                raise ActionFailed(
                    f"step {step_id}: Dragon cannot execute {action} here (no vendor configured)",
                    code="runbook_step_unavailable",
                )
            sub = dataclasses.replace(
                request,
                action=action,
                params=render(step.get("with", {}), params),
                idempotency_key=f"{request.idempotency_key}-{step_id}",
                checkpoint=dict(saved.get(step_id, {})),
            )
            log.step(step_id, "started", detail=action)
            results[step_id] = await handler(sub, _StepLog(log, step_id, saved))
            done.append(step_id)
            await log.checkpoint(completed_steps=done, step_results=results)
            log.step(step_id, "ok", detail=action)
        return {"runbook": f"{runbook.name}@{runbook.version}", "steps": results}
