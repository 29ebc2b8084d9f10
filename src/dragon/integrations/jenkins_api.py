"""Jenkins' remote access API as Dragon's actions use it: trigger a build with parameters
(with the CSRF crumb Jenkins asks for), and read a build's console output. Auth is HTTP basic
with a user and an API token.

Jenkins has no idempotency key. Dragon sends its run's key as the build parameter
`DRAGON_RUN_KEY` and, on a later attempt, looks for it in the job's queue and recent builds
before triggering again; a job that does not declare that parameter cannot be looked up, so a
lost answer fails the run (`action_outcome_unknown`) rather than risk a second build.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from dragon.domain.execution import ActionFailed, ActionRequest, StepLog
from dragon.integrations.action_http import Breaker, send

VENDOR = "Jenkins"
KEY_PARAMETER = "DRAGON_RUN_KEY"
MAX_CONSOLE = 65_536
# What the run's log and result keep of a console: its end, where a failure says why.
CONSOLE_TAIL = 3_000
_BUILD_REFS = frozenset({"lastBuild", "lastFailedBuild", "lastCompletedBuild"})


def job_path(job: str) -> str:
    """`folder/job` -> `/job/folder/job/job`."""
    parts = [p for p in job.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ActionFailed(f"not a Jenkins job name: {job!r}", code="action_params_invalid")
    return "".join(f"/job/{quote(p, safe='')}" for p in parts)


def _has_key(item: dict[str, Any], key: str) -> bool:
    for action in item.get("actions") or []:
        for parameter in (action or {}).get("parameters") or []:
            if parameter.get("name") == KEY_PARAMETER and parameter.get("value") == key:
                return True
    return False


class JenkinsClient:
    def __init__(self, http: httpx.AsyncClient, *, user: str, token: str, breaker: Breaker) -> None:
        self._http = http
        self._auth = httpx.BasicAuth(user, token)
        self._breaker = breaker

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await send(
            self._http, self._breaker, method, path, vendor=VENDOR, auth=self._auth, **kwargs
        )

    async def crumb(self) -> dict[str, str]:
        """The CSRF header Jenkins wants on POSTs; none when CSRF protection is off (404)."""
        try:
            response = await self._send("GET", "/crumbIssuer/api/json")
        except ActionFailed as exc:
            if exc.details.get("vendor_status") == 404:
                return {}
            raise
        body = response.json()
        return {str(body["crumbRequestField"]): str(body["crumb"])}

    async def build_with_parameters(self, job: str, parameters: dict[str, str]) -> str:
        """Queue a build; returns the queue item's URL (Jenkins' Location header)."""
        response = await self._send(
            "POST",
            f"{job_path(job)}/buildWithParameters",
            data=parameters,
            headers=await self.crumb(),
        )
        return str(response.headers.get("location", ""))

    async def queued_or_built_with(self, job: str, key: str) -> str | None:
        """The URL of a queued item or recent build whose DRAGON_RUN_KEY is `key`."""
        queue = (await self._send("GET", "/queue/api/json")).json()
        for item in queue.get("items") or []:
            if _has_key(item, key):
                return str(item.get("url") or "queued")
        tree = "builds[number,url,actions[parameters[name,value]]]{0,50}"
        builds = (
            await self._send("GET", f"{job_path(job)}/api/json", params={"tree": tree})
        ).json()
        for build in builds.get("builds") or []:
            if _has_key(build, key):
                return str(build.get("url") or "")
        return None

    async def console_text(self, job: str, number: int | str = "lastBuild") -> str:
        response = await self._send("GET", f"{job_path(job)}/{number}/consoleText")
        return response.text[-MAX_CONSOLE:]


class JenkinsActions:
    def __init__(self, client: JenkinsClient) -> None:
        self._client = client

    async def build(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        # Triage names the Jenkins job `job_name` (its `job` is the failed stage).
        job = request.params.get("job_name") or request.params.get("job")
        if not isinstance(job, str) or not job:
            raise ActionFailed("a Jenkins build needs params.job", code="action_params_invalid")
        given = request.params.get("parameters") or {}
        if not isinstance(given, dict):
            raise ActionFailed("params.parameters must be an object", code="action_params_invalid")
        parameters = {str(k): str(v) for k, v in given.items()}
        parameters[KEY_PARAMETER] = request.idempotency_key
        if request.checkpoint.get("triggering") == job:
            found = await self._client.queued_or_built_with(job, request.idempotency_key)
            if found is not None:
                log.step("build", "reused", detail=f"an earlier attempt queued {found}")
                return {"job": job, "url": found, "reused": True}
            raise ActionFailed(
                f"an attempt that died may have started {job}, and the job does not report "
                f"{KEY_PARAMETER}; not building it a second time",
                code="action_outcome_unknown",
            )
        await log.checkpoint(triggering=job)
        queued = await self._client.build_with_parameters(job, parameters)
        log.step("build", "ok", detail=f"{job} queued", queue_url=queued)
        return {"job": job, "queue_url": queued}

    async def console(self, request: ActionRequest, log: StepLog) -> dict[str, Any]:
        """Read a build's console output (`consoleText`): `params.job` and `params.build` (a
        number, or lastBuild / lastFailedBuild / lastCompletedBuild; default lastBuild). Reads
        only; its tail goes into the run's log and result."""
        job = request.params.get("job_name") or request.params.get("job")
        if not isinstance(job, str) or not job:
            raise ActionFailed("reading a console needs params.job", code="action_params_invalid")
        build = request.params.get("build", "lastBuild")
        if isinstance(build, int) and not isinstance(build, bool) and build > 0:
            build = str(build)
        if not isinstance(build, str) or not (build.isdigit() or build in _BUILD_REFS):
            raise ActionFailed(
                f"params.build is a build number or one of {', '.join(sorted(_BUILD_REFS))}",
                code="action_params_invalid",
            )
        text = await self._client.console_text(job, build)
        tail = text[-CONSOLE_TAIL:]
        log.step("console", "ok", detail=tail, job=job, build=build, length=len(text))
        return {"job": job, "build": build, "console_tail": tail}
