"""The autofix flow every forge shares: clone the repository, run the fixers configured for it,
commit on `dragon/fix-<incident>` and push; and the body of the pull or merge request that
proposes the branch. The forge (GitHub, GitLab) opens that request through its own API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from dragon.domain.execution import ActionFailed, ActionRequest, StepLog
from dragon.integrations.git_workspace import GitRemote, checked_branch, safe_paths, workspace

Fixers = tuple[tuple[str, tuple[str, ...]], ...]


def parse_fixers(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """`acme/*=ruff-format+ruff-fix,*=ruff-format`: the first matching repo pattern wins."""
    rules = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        pattern, _, names = part.partition("=")
        fixers = tuple(n.strip() for n in names.split("+") if n.strip())
        if not pattern.strip() or not fixers:
            raise ValueError(f"expected repo-pattern=fixer[+fixer], got {part!r}")
        rules.append((pattern.strip(), fixers))
    return rules


def fixers_for(rules: Fixers, repo: str) -> tuple[str, ...]:
    for pattern, fixers in rules:
        if fnmatchcase(repo, pattern):
            return fixers
    raise ActionFailed(f"no fixer is configured for {repo}", code="fixer_unconfigured")


def marker(request: ActionRequest) -> str:
    """Hidden in every body Dragon writes, so a later attempt recognises its own work."""
    return f"<!-- dragon:{request.idempotency_key} -->"


def change_body(request: ActionRequest, summary: str) -> str:
    """A pull or merge request's body: what Dragon did and under whose authority."""
    approvers = ", ".join(request.approvers) or "nobody: the policy auto-approved it"
    lines = [
        summary,
        "",
        f"- Incident: {request.links.get('incident', 'none')}",
        f"- Decision: {request.links['decision']}",
        f"- Approved by: {approvers}",
        f"- Policy rule: `{request.policy_rule}` (policy {request.policy_version})",
        f"- Run: {request.links['run']}",
        "",
        marker(request),
    ]
    return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class Autofix:
    """What one autofix works on: `branch` is pushed with the fix of `base`."""

    repo: str
    base: str
    branch: str
    target: str  # the incident (or decision) the fix is for
    fixers: tuple[str, ...]
    paths: tuple[str, ...]


def plan_autofix(request: ActionRequest, *, repo: str, rules: Fixers) -> Autofix:
    """The autofix a decision asks for, checked before anything remote is touched."""
    base = checked_branch(str(request.params.get("branch") or request.branch or "main"))
    target = request.incident_id or request.decision_id
    paths = _paths(request.params.get("paths") or request.params.get("file_path"))
    return Autofix(
        repo=repo,
        base=base,
        branch=checked_branch(f"dragon/fix-{target}"),
        target=target,
        fixers=fixers_for(rules, repo),
        paths=tuple(safe_paths(paths)),
    )


async def push_fix(fix: Autofix, remote: GitRemote, *, decision_id: str, log: StepLog) -> None:
    """Clone, fix, commit and push `fix.branch` — unless an earlier attempt pushed it already;
    fails with `autofix_no_change` when the fixers change nothing."""
    names = "+".join(fix.fixers)
    async with workspace(remote) as ws:
        await ws.clone(fix.base)
        log.step("clone", "ok", detail=f"{fix.repo}@{fix.base}")
        if await ws.remote_has_branch(fix.branch):
            log.step("push", "reused", detail=f"{fix.branch} was pushed by an earlier attempt")
            return
        for name in fix.fixers:
            await ws.fix(name, fix.paths)
            log.step("fixer", "ok", detail=name)
        changed = await ws.changed_files()
        if not changed:
            raise ActionFailed(
                f"{names} changed nothing on {fix.repo}@{fix.base}", code="autofix_no_change"
            )
        sha = await ws.commit_all_tracked(f"Dragon autofix: {names}\n\nDecision {decision_id}")
        await log.fence()
        await ws.push(fix.branch)
        log.step("push", "ok", detail=f"{fix.branch} at {sha[:12]}", files=changed)


def _paths(value: object) -> Sequence[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return []
