"""GitLab and Jenkins actions against local HTTP servers answering in the shapes the vendors
document (GitLab REST v4: pipelines, jobs, merge requests, notes; Jenkins remote access API:
crumb issuer, buildWithParameters, queue, consoleText). See tests/fixtures/*/SOURCES.md."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from dragon.domain.breaker import CircuitBreaker
from dragon.domain.execution import ActionFailed, ActionRequest
from dragon.integrations.gitlab_actions import GitLabActions
from dragon.integrations.gitlab_api import GitLabClient
from dragon.integrations.jenkins_api import KEY_PARAMETER, JenkinsActions, JenkinsClient
from dragon.services.runs import RunStepLog
from tests.conftest import FakeClock

GITLAB_TOKEN = "glpat-test-token-for-dragon-0123"
JENKINS_USER, JENKINS_TOKEN = "dragon", "11aa22bb33cc44dd55ee66ff77889900"
CRUMB = "4f1bcd5e7c1a9a0b2f1e7e1b8c1d2e3f"


@dataclass
class Vendor:
    calls: Counter[str] = field(default_factory=Counter)
    notes: list[dict[str, Any]] = field(default_factory=list)
    commit_comments: list[dict[str, Any]] = field(default_factory=list)
    merge_requests: list[dict[str, Any]] = field(default_factory=list)
    queue: list[dict[str, Any]] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    declares_key: bool = True
    pipeline_status: str = "failed"
    fail_next: list[int] = field(default_factory=list)
    # "METHOD /raw/path" -> statuses to answer that call with before serving it normally.
    fail_call: dict[str, list[int]] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(
        self,
        status: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        text: str | None = None,
    ) -> None:
        data = text.encode() if text is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        vendor = self.server.vendor
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        vendor.calls[f"{method} {url.path}"] += 1
        if vendor.fail_next:
            self._reply(vendor.fail_next.pop(0), {"message": "try later"})
            return
        if failing := vendor.fail_call.get(f"{method} {url.path}"):
            self._reply(failing.pop(0), {"message": "502 Bad Gateway"})
            return
        if url.path.startswith("/api/v4/"):
            self._gitlab(vendor, method, unquote(url.path), raw, parse_qs(url.query))
        else:
            self._jenkins(vendor, method, url.path, parse_qs(raw))

    def _gitlab(
        self, vendor: Vendor, method: str, path: str, raw: str, query: dict[str, list[str]]
    ) -> None:
        if self.headers.get("PRIVATE-TOKEN") != GITLAB_TOKEN:
            self._reply(401, {"message": "401 Unauthorized"})
            return
        body = json.loads(raw) if raw else {}
        if m := re.fullmatch(r"/api/v4/projects/(.+)/pipelines/(\d+)", path):
            self._reply(
                200,
                {
                    "id": int(m[2]),
                    "status": vendor.pipeline_status,
                    "web_url": f"https://gitlab.example.com/{m[1]}/-/pipelines/{m[2]}",
                },
            )
        elif m := re.fullmatch(r"/api/v4/projects/(.+)/pipelines/(\d+)/retry", path):
            vendor.pipeline_status = "pending"
            self._reply(
                201,
                {
                    "id": int(m[2]),
                    "status": "pending",
                    "web_url": f"https://gitlab.example.com/{m[1]}/-/pipelines/{m[2]}",
                },
            )
        elif m := re.fullmatch(r"/api/v4/projects/(.+)/jobs/(\d+)/retry", path):
            self._reply(
                201,
                {
                    "id": int(m[2]) + 1000,
                    "status": "pending",
                    "web_url": f"https://gitlab.example.com/{m[1]}/-/jobs/{int(m[2]) + 1000}",
                },
            )
        elif m := re.fullmatch(r"/api/v4/projects/(.+)/merge_requests", path):
            if method == "GET":
                wanted = {k: v[0] for k, v in query.items() if k in ("source_branch", "state")}
                self._reply(
                    200,
                    [
                        mr
                        for mr in vendor.merge_requests
                        if all(mr.get(k) == v for k, v in wanted.items() if v != "all")
                    ],
                )
                return
            if not {"source_branch", "target_branch", "title"} <= set(body):
                self._reply(400, {"message": "source_branch, target_branch, title are missing"})
                return
            iid = len(vendor.merge_requests) + 1
            made = {
                "id": 100 + iid,
                "iid": iid,
                **body,
                "state": "opened",
                # GitLab derives the draft flag from the title's prefix.
                "draft": re.match(r"(?i)(\[draft\]|\(draft\)|draft:)", body["title"]) is not None,
                "web_url": f"https://gitlab.example.com/{m[1]}/-/merge_requests/{iid}",
            }
            vendor.merge_requests.append(made)
            self._reply(201, made)
        elif re.fullmatch(r"/api/v4/projects/(.+)/repository/commits/([0-9a-f]+)/comments", path):
            if method == "GET":
                self._reply(200, vendor.commit_comments)
                return
            made = {"note": body["note"], "author": {"username": "dragon"}}
            vendor.commit_comments.append(made)
            self._reply(201, made)
        elif re.fullmatch(r"/api/v4/projects/(.+)/merge_requests/(\d+)/notes", path):
            if method == "GET":
                self._reply(200, vendor.notes)
                return
            made = {"id": len(vendor.notes) + 1, "body": body["body"]}
            vendor.notes.append(made)
            self._reply(201, made)
        else:
            self._reply(404, {"message": "404 Not Found"})

    def _jenkins(self, vendor: Vendor, method: str, path: str, form: dict[str, list[str]]) -> None:
        expected = base64.b64encode(f"{JENKINS_USER}:{JENKINS_TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._reply(401, {"message": "Unauthorized"})
            return
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if path == "/crumbIssuer/api/json":
            self._reply(
                200,
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": CRUMB,
                    "crumbRequestField": "Jenkins-Crumb",
                },
            )
        elif m := re.fullmatch(r"/job/([^/]+)/buildWithParameters", path):
            if self.headers.get("Jenkins-Crumb") != CRUMB:
                self._reply(403, None, text="No valid crumb was included in the request")
                return
            number = len(vendor.queue) + 1
            parameters = [
                {"name": k, "value": v[0]}
                for k, v in form.items()
                if vendor.declares_key or k != KEY_PARAMETER
            ]
            vendor.queue.append(
                {
                    "id": number,
                    "url": f"queue/item/{number}/",
                    "actions": [{"parameters": parameters}],
                    "task": {"name": m[1]},
                }
            )
            self._reply(201, None, text="", headers={"Location": f"{base}/queue/item/{number}/"})
        elif path == "/queue/api/json":
            self._reply(200, {"items": vendor.queue})
        elif re.fullmatch(r"/job/([^/]+)/api/json", path):
            self._reply(200, {"builds": vendor.builds})
        elif re.fullmatch(r"/job/([^/]+)/(\d+|lastBuild)/consoleText", path):
            self._reply(200, None, text="Started by user dragon\n+ make test\nFinished: FAILURE\n")
        else:
            self._reply(404, None, text="Not Found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    vendor: Vendor


@pytest.fixture
def vendor() -> Iterator[tuple[Vendor, str]]:
    state = Vendor()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.vendor = state
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def request(params: dict[str, Any], *, checkpoint: dict[str, Any] | None = None) -> ActionRequest:
    return ActionRequest(
        run_id="run_1",
        idempotency_key="dragon-0123456789abcdef",
        action="x",
        params=params,
        decision_id="dec_1",
        incident_id="inc_1",
        repo="acme/platform/api",
        branch="main",
        source="gitlab",
        policy_version="sha256:x",
        policy_rule="r",
        links={
            "decision": "http://dragon/api/v1/decisions/dec_1",
            "incident": "http://dragon/api/v1/incidents/inc_1",
            "run": "http://dragon/api/v1/runs/run_1",
        },
        checkpoint=checkpoint or {},
    )


class Saved:
    def __init__(self) -> None:
        self.checkpoint: dict[str, Any] = {}
        self.fences = 0

    async def __call__(self, data: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        self.checkpoint.update(data)

    async def fence(self) -> None:
        self.fences += 1


def step_log(saved: Saved) -> RunStepLog:
    return RunStepLog(clock=FakeClock(), save=saved, fence=saved.fence)


def gitlab_actions(http: httpx.AsyncClient, *, token: str = GITLAB_TOKEN) -> GitLabActions:
    """Dragon's GitLab actions over `http`, behind a breaker of their own."""
    client = GitLabClient(http, token=token, breaker=CircuitBreaker("gl", clock=FakeClock()))
    return GitLabActions(client, token=token)


async def test_gitlab_retries_a_pipeline_once_even_when_asked_again_after_a_lost_answer(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        actions = gitlab_actions(http)
        saved = Saved()
        result = await actions.retry(request({"pipeline_id": 88}), step_log(saved))
        assert result["url"].endswith("/acme/platform/api/-/pipelines/88")
        again = await actions.retry(
            request({"pipeline_id": 88}, checkpoint=saved.checkpoint), step_log(Saved())
        )
    assert again["reused"] is True
    assert state.calls["POST /api/v4/projects/acme%2Fplatform%2Fapi/pipelines/88/retry"] == 1


async def test_gitlab_takes_triages_numeric_project_id_and_pipeline_id_strings(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        actions = gitlab_actions(http)
        params = {"project_id": "4711", "pipeline_id": "88", "repo": "acme/platform/api"}
        await actions.retry(request(params), step_log(Saved()))
    assert state.calls["POST /api/v4/projects/4711/pipelines/88/retry"] == 1


async def test_gitlab_retries_a_job_and_never_twice_when_the_first_answer_was_lost(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        actions = gitlab_actions(http)
        result = await actions.retry(request({"job_id": 7}), step_log(Saved()))
        assert result["job_id"] == 1007
        with pytest.raises(ActionFailed) as lost:
            await actions.retry(
                request({"job_id": 7}, checkpoint={"retrying_job": 7}), step_log(Saved())
            )
    assert lost.value.code == "action_outcome_unknown"
    assert sum(n for k, n in state.calls.items() if k.endswith("/jobs/7/retry")) == 1


async def test_gitlab_opens_one_merge_request_and_comments_once(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        actions = gitlab_actions(http)
        params = {"source_branch": "dragon/fix-inc_1", "title": "Dragon fix"}
        first = await actions.open_merge_request(request(params), step_log(Saved()))
        second = await actions.open_merge_request(request(params), step_log(Saved()))
        note = {"merge_request_iid": 1, "body": "CI is green again"}
        await actions.comment(request(note), step_log(Saved()))
        repeat = await actions.comment(request(note), step_log(Saved()))
    assert first["merge_request_url"] == second["merge_request_url"]
    assert second["reused"] is True
    (made,) = state.merge_requests
    assert made["target_branch"] == "main"
    assert made["draft"] is True
    assert made["title"] == "Draft: Dragon fix"
    assert "http://dragon/api/v1/decisions/dec_1" in made["description"]
    assert state.calls["GET /api/v4/projects/acme%2Fplatform%2Fapi/merge_requests"] == 2
    assert repeat["reused"] is True
    assert len(state.notes) == 1


async def test_gitlab_opens_a_new_merge_request_when_the_earlier_one_was_closed(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    state.merge_requests.append(
        {"iid": 1, "source_branch": "dragon/fix-inc_1", "state": "closed", "web_url": "old"}
    )
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        actions = gitlab_actions(http)
        saved = Saved()
        made = await actions.open_merge_request(
            request({"source_branch": "dragon/fix-inc_1"}), step_log(saved)
        )
    assert "reused" not in made
    assert [mr["state"] for mr in state.merge_requests] == ["closed", "opened"]
    assert saved.fences == 1  # the lease was checked before the merge request was made


async def test_gitlab_comments_on_a_commit_once(vendor: tuple[Vendor, str]) -> None:
    state, url = vendor
    sha = "0b4bc9a49b562e85de7cc9e834518ea6828729b9"
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        actions = gitlab_actions(http)
        note = {"commit_sha": sha, "body": "this commit broke the build"}
        first = await actions.comment(request(note), step_log(Saved()))
        again = await actions.comment(request(note), step_log(Saved()))
    commented = f"POST /api/v4/projects/acme%2Fplatform%2Fapi/repository/commits/{sha}/comments"
    assert state.calls[commented] == 1
    assert first == {"commit_sha": sha}
    assert again["reused"] is True
    (made,) = state.commit_comments
    assert made["note"].startswith("this commit broke the build")
    assert "dragon-0123456789abcdef" in made["note"]


async def test_gitlab_refusal_fails_with_gitlabs_message_and_5xx_is_retryable(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        with pytest.raises(ActionFailed) as refused:
            await gitlab_actions(http, token="wrong").retry(
                request({"pipeline_id": 1}), step_log(Saved())
            )
        state.fail_next.append(503)
        good = GitLabClient(
            http, token=GITLAB_TOKEN, breaker=CircuitBreaker("gl2", clock=FakeClock())
        )
        with pytest.raises(ActionFailed) as unavailable:
            await good.pipeline("acme/api", 1)
    assert refused.value.code == "vendor_rejected"
    assert "401 Unauthorized" in refused.value.message
    assert refused.value.retryable is False
    assert unavailable.value.retryable is True


async def test_jenkins_builds_with_parameters_and_the_crumb_and_reads_the_console(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        client = JenkinsClient(
            http,
            user=JENKINS_USER,
            token=JENKINS_TOKEN,
            breaker=CircuitBreaker("jenkins", clock=FakeClock()),
        )
        actions = JenkinsActions(client)
        saved = Saved()
        params = {"job_name": "api-ci", "job": "test", "parameters": {"BRANCH": "main"}}
        result = await actions.build(request(params), step_log(saved))
        assert result["queue_url"].endswith("/queue/item/1/")
        # The answer was lost: the next attempt finds the queued build by its key.
        again = await actions.build(request(params, checkpoint=saved.checkpoint), step_log(Saved()))
        console = await client.console_text("api-ci", 12)
    assert again["reused"] is True
    assert state.calls["POST /job/api-ci/buildWithParameters"] == 1
    (item,) = state.queue
    parameters = {p["name"]: p["value"] for p in item["actions"][0]["parameters"]}
    assert parameters == {"BRANCH": "main", KEY_PARAMETER: "dragon-0123456789abcdef"}
    assert "Finished: FAILURE" in console


async def test_jenkins_without_the_key_parameter_never_builds_twice(
    vendor: tuple[Vendor, str],
) -> None:
    state, url = vendor
    state.declares_key = False
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        actions = JenkinsActions(
            JenkinsClient(
                http,
                user=JENKINS_USER,
                token=JENKINS_TOKEN,
                breaker=CircuitBreaker("jenkins", clock=FakeClock()),
            )
        )
        saved = Saved()
        await actions.build(request({"job": "api-ci"}), step_log(saved))
        with pytest.raises(ActionFailed) as lost:
            await actions.build(
                request({"job": "api-ci"}, checkpoint=saved.checkpoint), step_log(Saved())
            )
    assert lost.value.code == "action_outcome_unknown"
    assert state.calls["POST /job/api-ci/buildWithParameters"] == 1
