"""Console pages for runbooks: the registered manifests with their versions, parameters and
steps, and a form that proposes a run. A run is proposed through the same use case as
`POST /api/v1/runbooks/{name}/runs`, so it becomes a decision under policy like any other."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import RedirectResponse, Response

from dragon.api.access import GuardedRoute, caller, principal_of, services
from dragon.api.problems import STATUS_BY_KIND
from dragon.api.routes.runbooks import RunbookName, RunbookRunIn
from dragon.domain.entities import Decision, Principal, Runbook
from dragon.domain.enums import DecisionStatus, Role
from dragon.domain.errors import DragonError, ValidationFailed
from dragon.domain.runbooks import bind_parameters
from dragon.services.container import Services
from dragon.services.context import Caller
from dragon.web.governance import validated
from dragon.web.rendering import form_of, render

router = APIRouter(route_class=GuardedRoute, include_in_schema=False)
Who = Annotated[Principal, Depends(principal_of)]
Svc = Annotated[Services, Depends(services)]
PARAM_PREFIX = "param."
TARGET_FIELDS = ("incident_id", "repo", "branch", "environment")
_INTEGER = re.compile(r"-?\d{1,18}")
_OUTCOMES = {
    DecisionStatus.PENDING_APPROVAL: "It waits for approval in the approval queue.",
    DecisionStatus.APPROVED: "The policy approved it; the run starts shortly.",
    DecisionStatus.AUTO_APPROVED: "The policy approved it; the run starts shortly.",
    DecisionStatus.DENIED: "The policy refused it; nothing will run.",
}


@router.get("/runbooks")
async def runbooks_page(request: Request, who: Who, svc: Svc) -> Response:
    latest = await svc.runbooks.latest()
    counts = {r.name: len(await svc.runbooks.versions(r.name)) for r in latest}
    return render(request, "runbooks.html", principal=who, runbooks=latest, counts=counts)


def typed_parameters(
    runbook: Runbook, form: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's text turned into the manifest's declared types. An empty field is left out,
    so the manifest's default applies (or the use case says it is required)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in runbook.manifest.get("parameters", []):
        name, kind = spec["name"], spec["type"]
        raw = form.get(PARAM_PREFIX + name, "").strip()
        if not raw:
            continue
        if kind == "integer":
            if _INTEGER.fullmatch(raw):
                values[name] = int(raw)
            else:
                errors[name] = "must be a whole number, for example 7"
        elif kind == "number":
            try:
                values[name] = float(raw)
            except ValueError:
                errors[name] = "must be a number, for example 2.5"
        elif kind == "boolean":
            if raw in ("true", "false"):
                values[name] = raw == "true"
            else:
                errors[name] = "choose yes or no"
        else:
            values[name] = raw
    return values, errors


def _errors_of(exc: ValidationFailed) -> dict[str, str]:
    """The use case's `errors[]` keyed by form field: `parameters.NAME` is the field NAME."""
    found: dict[str, str] = {}
    for error in exc.details.get("errors", []):
        field = str(error.get("field", ""))
        name = field.removeprefix("parameters.")
        found[name if field.startswith("parameters.") else "form"] = str(error["message"])
    return found or {"form": exc.message}


async def _runbook_page(
    request: Request,
    name: str,
    who: Principal,
    svc: Services,
    *,
    version: str | None = None,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    proposed: Decision | None = None,
) -> Response:
    versions = await svc.runbooks.versions(name)
    chosen = next((r for r in versions if r.version == version), versions[0])
    return render(
        request,
        "runbook.html",
        principal=who,
        status_code=status_code,
        runbook=chosen,
        versions=versions,
        can_start=who.role.includes(Role.DEVELOPER),
        errors=errors or {},
        values=values or {},
        proposed=proposed,
        outcome=_OUTCOMES.get(proposed.status, "") if proposed else "",
        prefix=PARAM_PREFIX,
    )


@router.get("/runbooks/{name}")
async def runbook_page(
    request: Request,
    name: RunbookName,
    who: Who,
    svc: Svc,
    version: Annotated[str | None, Query(max_length=64)] = None,
    proposed: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    decision = None
    if proposed:
        decision = (await svc.decisions.get(proposed)).decision
    return await _runbook_page(request, name, who, svc, version=version, proposed=decision)


@router.post("/runbooks/{name}/runs")
async def start_run(
    request: Request,
    name: RunbookName,
    who: Annotated[Caller, Depends(caller)],
    svc: Svc,
) -> Response:
    """Propose a run from the form; every field's problem is shown next to that field."""
    form = await form_of(request)
    version = form.get("version") or None
    versions = await svc.runbooks.versions(name)
    runbook = next((r for r in versions if r.version == version), versions[0])
    parameters, errors = typed_parameters(runbook, form)
    targets = {f: form.get(f, "").strip() or None for f in TARGET_FIELDS}
    body, target_errors = validated(RunbookRunIn, {"version": runbook.version, **targets})
    errors.update(target_errors)

    async def again(status_code: int, problems: dict[str, str]) -> Response:
        return await _runbook_page(
            request,
            name,
            who.principal,
            svc,
            version=runbook.version,
            status_code=status_code,
            errors=problems,
            values=form,
        )

    if errors:
        try:  # the rest of the manifest's rules too, so every problem is shown at once
            bind_parameters(runbook.manifest, parameters)
        except ValidationFailed as exc:
            errors = {**_errors_of(exc), **errors}
        return await again(422, errors)
    try:
        decision = await svc.runbooks.start(
            who,
            name,
            version=runbook.version,
            parameters=parameters,
            incident_id=body.incident_id,
            repo=body.repo,
            branch=body.branch,
            environment=body.environment,
        )
    except ValidationFailed as exc:
        return await again(422, _errors_of(exc))
    except DragonError as exc:
        field = "incident_id" if exc.code == "incident_not_found" else "form"
        return await again(STATUS_BY_KIND[exc.kind], {field: exc.message})
    return RedirectResponse(
        f"/runbooks/{name}?version={runbook.version}&proposed={decision.id}", status_code=303
    )
