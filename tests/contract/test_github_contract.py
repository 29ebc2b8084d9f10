"""Every call Dragon's GitHub client makes is accepted by GitHub's published OpenAPI description
(npm `@octokit/openapi`), served by Prism (`@stoplight/prism-cli`), which checks each request
against the operation it matches and names each violation in its `sl-violations` header.

The spec is cut down to the operations the client uses, with every component they reference,
so Prism starts in a second instead of half a minute; the operations themselves are GitHub's,
unchanged. `.ci/run` (and `make test`) install both packages: `npm ci --prefix tests/contract`.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dragon.domain.breaker import CircuitBreaker
from dragon.integrations.github_api import GitHubApp, GitHubAuth, GitHubClient
from tests.conftest import FakeClock
from tests.support.ports import free_port

HERE = Path(__file__).parent
PRISM = HERE / "node_modules" / ".bin" / "prism"
SPEC = HERE / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
# The operations GitHubClient calls; the test below fails if it gains a call not listed here.
OPERATIONS = {
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/repos/{owner}/{repo}/actions/runs/{run_id}"),
    ("post", "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/commits/{commit_sha}/comments"),
    ("post", "/repos/{owner}/{repo}/commits/{commit_sha}/comments"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def cut_spec(full: dict[str, Any]) -> dict[str, Any]:
    """GitHub's description restricted to OPERATIONS and the components they reach."""
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS:
        paths.setdefault(path, {})[method] = full["paths"][path][method]
    components: dict[str, dict[str, Any]] = {}
    pending = list(_refs(paths))
    while pending:
        ref = pending.pop()
        _, _, kind, name = ref.split("/", 3)
        if name in components.get(kind, {}):
            continue
        found = full["components"][kind][name]
        components.setdefault(kind, {})[name] = found
        pending.extend(_refs(found))
    return {
        "openapi": full["openapi"],
        "info": full["info"],
        "servers": full["servers"],
        "paths": paths,
        "components": components,
    }


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert PRISM.exists(), "run `npm ci --prefix tests/contract` (make test does)"
    spec = tmp_path_factory.mktemp("prism") / "github.json"
    spec.write_text(json.dumps(cut_spec(json.loads(SPEC.read_text()))))
    port = free_port()
    process = subprocess.Popen(
        [str(PRISM), "mock", "--host", "127.0.0.1", "--port", str(port), str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("prism did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class Recorder:
    """Keeps Prism's verdict on every request the client sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int, list[dict[str, Any]]]] = []

    async def __call__(self, response: httpx.Response) -> None:
        violations = json.loads(response.headers.get("sl-violations", "[]"))
        request = response.request
        self.seen.append((request.method, request.url.path, response.status_code, violations))

    def request_violations(self) -> list[Any]:
        return [
            (method, path, v)
            for method, path, _, found in self.seen
            for v in found
            if v["location"][0] == "request"
        ]


def _app_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _operation(method: str, path: str) -> tuple[str, str]:
    for op_method, template in OPERATIONS:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if op_method == method.lower() and re.fullmatch(pattern, path):
            return op_method, template
    raise AssertionError(f"{method} {path} is not an operation the contract lists")


async def test_every_call_of_the_github_client_is_valid_under_githubs_openapi_description(
    prism: str,
) -> None:
    recorder = Recorder()
    clock = FakeClock()
    async with httpx.AsyncClient(
        base_url=prism, timeout=10, event_hooks={"response": [recorder]}
    ) as http:
        auth = GitHubAuth(clock=clock, app=GitHubApp("12345", _app_key(), "67890"))
        client = GitHubClient(http, auth=auth, breaker=CircuitBreaker("github", clock=clock))
        await client.workflow_run("acme/api", 30433642)
        await client.rerun_failed_jobs("acme/api", 30433642)
        await client.issue_comments("acme/api", 7)
        await client.comment_on_issue("acme/api", 7, "Dragon: CI failed\n\n<!-- dragon:k -->")
        await client.commit_comments("acme/api", "6dcb09b5b57875f334f61aebed695e2e4193db5e")
        await client.comment_on_commit(
            "acme/api", "6dcb09b5b57875f334f61aebed695e2e4193db5e", "Dragon: this broke CI"
        )
        await client.open_pulls_from("acme/api", head="acme:dragon/fix-inc_1")
        await client.open_pull(
            "acme/api",
            title="Dragon autofix",
            head="dragon/fix-inc_1",
            base="main",
            body="links",
            draft=True,
        )
        assert await client.git_token()
    assert recorder.request_violations() == []
    assert all(status < 400 for _, _, status, _ in recorder.seen), recorder.seen
    called = {_operation(method, path) for method, path, _, _ in recorder.seen}
    assert called == OPERATIONS


async def test_prism_would_refuse_a_call_that_breaks_the_description(prism: str) -> None:
    """The check above can fail: a pull request without its head is a violation."""
    async with httpx.AsyncClient(base_url=prism, timeout=10) as http:
        response = await http.post("/repos/acme/api/pulls", json={"title": "x", "base": "main"})
    assert response.status_code == 422
    violations = json.loads(response.headers["sl-violations"])
    assert any("head" in v["message"] for v in violations)


def test_the_contract_lists_every_call_the_client_can_make() -> None:
    public = {
        name
        for name, member in inspect.getmembers(GitHubClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert public == {
        "workflow_run",
        "rerun_failed_jobs",
        "issue_comments",
        "comment_on_issue",
        "commit_comments",
        "comment_on_commit",
        "open_pulls_from",
        "open_pull",
        "git_token",
    }
