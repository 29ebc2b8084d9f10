"""The original system's action routes: `POST /api/generate`, `/api/pr` and
`/api/create-autofix-pr`. They used to act at once; now each proposes a decision that goes
through policy and approvals like any other, and the run worker acts once it is approved."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, StringConstraints
from starlette.responses import Response

from dragon.api.access import GuardedRoute, caller, services
from dragon.api.rate_limits import rate_limit
from dragon.api.routes.decisions import propose_and_answer
from dragon.api.schemas import Branch, DecisionOut, Name, Request, Sha, Text, Title
from dragon.services.container import Services
from dragon.services.context import Caller
from dragon.services.decisions import Proposal

router = APIRouter(tags=["compatibility"], route_class=GuardedRoute)


def _owner_name(value: str) -> str:
    owner, _, name = value.partition("/")
    if not owner or not name or "/" in name or {owner, name} & {".", ".."}:
        raise ValueError("expected owner/name, for example acme/api")
    return value


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if "\\" in value or "\x00" in value:
        raise ValueError("expected a path with / separators, for example src/app.py")
    if path.is_absolute():
        raise ValueError("expected a path relative to the repository root, not an absolute one")
    if ".." in path.parts:
        raise ValueError("expected a path inside the repository; '..' is not allowed")
    if value.startswith("-") or str(path) in ("", "."):
        raise ValueError("expected a file path, for example src/app.py")
    return str(path)


OwnerName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"),
    AfterValidator(_owner_name),
]
FilePath = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_relative_path)
]


class GenerateIn(Request):
    """The original `POST /api/generate`: ask for a fix to a failure."""

    repo: OwnerName
    branch: Branch | None = None
    incident_id: Name | None = None
    log: Annotated[str, StringConstraints(max_length=65_536)] = ""
    file_path: FilePath | None = None
    rationale: Text = ""


class PullRequestIn(Request):
    """The original `POST /api/pr`: open a pull request (an autofix, or a revert of a commit)."""

    repo: OwnerName
    branch: Branch
    title: Title | None = None
    description: Text = ""
    incident_id: Name | None = None
    commit_sha: Sha | None = None
    file_path: FilePath | None = None


class AutofixPrIn(Request):
    """The original `POST /api/create-autofix-pr`."""

    repo: OwnerName
    branch: Branch
    file_path: FilePath
    incident_id: Name | None = None
    title: Title | None = None
    description: Text = ""


def _autofix(
    *,
    route: str,
    repo: str,
    branch: str | None,
    incident_id: str | None,
    title: str,
    rationale: str,
    params: dict[str, Any],
) -> Proposal:
    return Proposal(
        action="open_autofix_pr",
        title=title,
        incident_id=incident_id,
        repo=repo,
        branch=branch,
        params={"repo": repo, **({"branch": branch} if branch else {}), **params},
        rationale=rationale,
        source="github",
        provenance={"via": route},
    )


@router.post(
    "/api/generate",
    status_code=201,
    response_model=DecisionOut,
    dependencies=[Depends(rate_limit("generate", by="principal"))],
)
async def legacy_generate(
    body: GenerateIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Proposes an autofix pull request for the failure; it runs once policy (and, if the
    policy says so, approvers) allow. Rate-limited per principal (`generate` scope)."""
    params: dict[str, Any] = {"paths": [body.file_path]} if body.file_path else {}
    if body.log:
        params["log_excerpt"] = body.log[-4000:]
    return await propose_and_answer(
        svc,
        who,
        _autofix(
            route="/api/generate",
            repo=body.repo,
            branch=body.branch,
            incident_id=body.incident_id,
            title=f"Autofix for {body.repo}",
            rationale=body.rationale or "requested through /api/generate",
            params=params,
        ),
    )


@router.post("/api/pr", status_code=201, response_model=DecisionOut)
async def legacy_pull_request(
    body: PullRequestIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Proposes a pull request: a revert of `commit_sha` when given, else an autofix."""
    if body.commit_sha:
        proposal = Proposal(
            action="open_revert_pr",
            title=body.title or f"Revert {body.commit_sha[:12]} on {body.repo}",
            incident_id=body.incident_id,
            repo=body.repo,
            branch=body.branch,
            params={"repo": body.repo, "branch": body.branch, "commit_sha": body.commit_sha},
            rationale=body.description,
            source="github",
            provenance={"via": "/api/pr"},
        )
    else:
        proposal = _autofix(
            route="/api/pr",
            repo=body.repo,
            branch=body.branch,
            incident_id=body.incident_id,
            title=body.title or f"Autofix for {body.repo}",
            rationale=body.description,
            params={"paths": [body.file_path]} if body.file_path else {},
        )
    return await propose_and_answer(svc, who, proposal)


@router.post("/api/create-autofix-pr", status_code=201, response_model=DecisionOut)
async def legacy_create_autofix_pr(
    body: AutofixPrIn,
    who: Annotated[Caller, Depends(caller)],
    svc: Annotated[Services, Depends(services)],
) -> Response:
    """Proposes an autofix pull request for one file. `repo` must be `owner/name`, `branch` a
    valid branch name and `file_path` relative, inside the repository; otherwise 422 names
    the field."""
    return await propose_and_answer(
        svc,
        who,
        _autofix(
            route="/api/create-autofix-pr",
            repo=body.repo,
            branch=body.branch,
            incident_id=body.incident_id,
            title=body.title or f"Autofix {body.file_path} on {body.repo}",
            rationale=body.description,
            params={"paths": [body.file_path]},
        ),
    )
