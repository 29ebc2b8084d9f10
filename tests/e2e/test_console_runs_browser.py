"""Runbooks and runs in a real browser against a real server whose runs call a local GitHub
stand-in: propose a run from the typed form (errors next to fields), watch its run appear and
finish on the open runs page, read its log and result, find it in the incident timeline, and the
playground's analyzer on a failing CI log; axe-core and 360 px on every new page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.e2e.conftest import (
    Server,
    axe_violations,
    checked_at_both_widths,
    log_in,
    running_server,
    screenshot,
)
from tests.fake_github import FakeGitHub

pytestmark = pytest.mark.one_pass(
    "sqlite", "the console as `make run` serves it; its store reads are tests/api on both"
)

REPO = "acme/api"


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as running:
        yield running


@pytest.fixture(scope="module")
async def server(
    migrated_template: str, tmp_path_factory: pytest.TempPathFactory, github: FakeGitHub
) -> AsyncIterator[Server]:
    async with running_server(
        migrated_template,
        tmp_path_factory.mktemp("e2e-runs"),
        DRAGON_GITHUB_TOKEN=github.state.token,
        DRAGON_GITHUB_API_URL=github.url,
        DRAGON_HTTP_TIMEOUT_SECONDS="5",
    ) as running:
        yield running


def manifest(github: FakeGitHub, *, name: str, url_path: str = "/hooks/restart") -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0.0",
        "description": "Restart a service through its deploy hook, then tell the pull request",
        "parameters": [
            {"name": "service", "type": "string", "description": "what to restart"},
            {"name": "pull_number", "type": "integer", "required": False, "default": 7},
            {"name": "drain", "type": "boolean", "required": False, "default": True},
        ],
        "steps": [
            {
                "id": "restart",
                "action": "http_call",
                "with": {
                    "method": "POST",
                    "url": f"{github.url}{url_path}",
                    "body": {"service": "{{ params.service }}"},
                },
            },
            {
                "id": "tell",
                "action": "comment",
                "with": {
                    "body": "Dragon restarted {{ params.service }}",
                    "pull_number": "{{ params.pull_number }}",
                },
            },
        ],
    }


async def api(server: Server, method: str, path: str, role: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.request(method, path, headers=server.key(role), **kw)
        assert response.is_success, response.text
        return response.json()


async def register(server: Server, body: dict[str, Any]) -> None:
    await api(server, "POST", "/api/v1/runbooks", "admin", json=body)


async def approve(server: Server, decision_id: str) -> None:
    await api(
        server,
        "POST",
        f"/api/v1/decisions/{decision_id}/approve",
        "approver",
        json={"justification": "restarting is safe"},
    )


async def propose_from_form(page: Page, *, service: str, incident_id: str = "") -> str:
    await page.get_by_label("service (string, required)").fill(service)
    await page.get_by_label("Repository").fill(REPO)
    if incident_id:
        await page.get_by_label("Incident").fill(incident_id)
    await page.get_by_role("button", name="Propose the run").click()
    notice = page.locator("#proposed")
    await expect(notice).to_contain_text("pending_approval")
    found = re.search(r"dec_[0-9a-z]+", await notice.inner_text())
    assert found
    return found.group(0)


async def test_a_developer_proposes_a_run_and_watches_it_finish_live(
    context: BrowserContext, server: Server, github: FakeGitHub
) -> None:
    await register(server, manifest(github, name="restart-web"))
    incident = await api(
        server,
        "POST",
        "/api/v1/incidents",
        "developer",
        json={"title": "web answers 502", "severity": "SEV2"},
    )
    page = await log_in(context, server.keys["developer"])
    await page.get_by_role("link", name="Runbooks").click()
    await expect(page.get_by_role("heading", name="Runbooks", level=1)).to_be_visible()
    await page.get_by_role("link", name="restart-web").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("restart-web")
    # Errors next to their fields, and what was typed kept.
    await page.get_by_label("pull_number (integer, optional)").fill("seven")
    await page.get_by_role("button", name="Propose the run").click()
    await expect(page.locator("#param-service-error")).to_have_text("is required")
    await expect(page.locator("#param-pull_number-error")).to_contain_text("whole number")
    await expect(page.get_by_label("pull_number (integer, optional)")).to_have_value("seven")
    await expect(page.get_by_label("service (string, required)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await screenshot(page, "runbook-errors")
    assert await axe_violations(page) == []
    await page.get_by_label("pull_number (integer, optional)").fill("")
    decision_id = await propose_from_form(page, service="web", incident_id=incident["id"])
    await screenshot(page, "runbook")

    # The run appears and finishes on the open runs page, without a reload.
    await page.get_by_role("link", name="Follow its run").click()
    await expect(page.locator("#runs-panel")).to_have_attribute("data-live", "connected")
    await expect(page.get_by_text("No runs match.")).to_be_visible()
    await page.evaluate("window.__stillTheSamePage = true")
    await approve(server, decision_id)
    row = page.locator("#runs-panel tbody tr").first
    await expect(row).to_contain_text("succeeded after 1 attempt(s)", timeout=20_000)
    assert await page.evaluate("window.__stillTheSamePage") is True
    await expect(page.locator("#live-status")).to_contain_text("Runs updated")
    await screenshot(page, "runs")

    await row.get_by_role("link").click()
    await expect(page.get_by_role("heading", name="Run of run_runbook", level=1)).to_be_visible()
    await expect(page.locator("#run-status")).to_contain_text("succeeded after 1 attempt(s)")
    log = page.locator("#run-log")
    await expect(log).to_contain_text("restart")
    await expect(log).to_contain_text("tell")
    await expect(page.locator("#run-links a")).to_have_attribute(
        "href", re.compile(r"^https://github\.com/acme/api/")
    )
    await screenshot(page, "run")
    assert github.state.calls["POST /hooks/restart"] == 1

    # The run is in the incident's timeline, with a way to it and out to its result.
    await page.goto(f"/incidents/{incident['id']}")
    timeline = page.locator("ol.timeline")
    await expect(timeline).to_contain_text("Run of run_runbook succeeded")
    await expect(timeline.get_by_role("link", name="see the run").first).to_be_visible()
    await screenshot(page, "incident-timeline")


async def test_a_failed_run_says_why_in_words(
    context: BrowserContext, server: Server, github: FakeGitHub
) -> None:
    await register(server, manifest(github, name="restart-broken", url_path="/not-a-hook"))
    page = await log_in(context, server.keys["developer"])
    await page.goto("/runbooks/restart-broken")
    decision_id = await propose_from_form(page, service="api")
    await approve(server, decision_id)
    await page.goto(f"/runs?decision_id={decision_id}")
    row = page.locator("#runs-panel tbody tr").first
    await expect(row).to_contain_text("failed after 1 attempt(s)", timeout=20_000)
    await page.goto("/runs?status=failed")
    await expect(page.locator("#runs-panel")).to_contain_text("failed after 1 attempt(s)")
    await row.get_by_role("link").click()
    await expect(page.locator("#run-status")).to_contain_text("failed after 1 attempt(s)")
    await expect(page.get_by_text("Last error")).to_contain_text("vendor_rejected")
    await screenshot(page, "run-failed")


async def test_the_playground_analyzes_a_failing_ci_log(context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto("/playground")
    await page.get_by_label("Preset CI failure").select_option("ci-test-on-main")
    await expect(page.get_by_label("CI log excerpt")).to_have_value(re.compile("FAILED tests/"))
    await page.get_by_role("button", name="Analyze it").click()
    await expect(page.locator("#result-classification")).to_contain_text("test failure")
    await expect(page.locator("#result-action")).to_have_text("revert_pull_request")
    await expect(page.locator("#result-evidence li").first).to_contain_text("line ")
    await expect(page.locator("#result-approval")).to_contain_text("approval(s) from")
    await expect(page.locator("#result-risk")).to_contain_text("/100")
    stats = page.locator("#playground-stats")
    await expect(stats).to_contain_text("1 from a CI log (1 test_failure)")
    await screenshot(page, "playground-analysis")
    assert await axe_violations(page) == []
    # A pasted log of the visitor's own, with a bad commit: the error sits next to its field.
    await page.get_by_label("Preset CI failure").select_option("")
    await page.get_by_label("CI log excerpt").fill("Would reformat: app.py\n")
    await page.get_by_label("Commit (optional)").fill("not-a-sha")
    await page.get_by_role("button", name="Analyze it").click()
    await expect(page.locator("#ci-commit_sha-error")).to_be_visible()
    await page.get_by_label("Commit (optional)").fill("")
    await page.get_by_role("button", name="Analyze it").click()
    await expect(page.locator("#result-classification")).to_contain_text("lint format")
    await expect(page.locator("#result-action")).to_have_text("autofix_pull_request")


async def switch(server: Server, *, enabled: bool) -> None:
    body = {"enabled": enabled, "reason": "e2e: hold runs to watch one start"}
    await api(server, "PUT", "/api/v1/actions/switch", "admin", json=body)


async def test_a_run_page_shows_its_progress_without_a_reload(
    context: BrowserContext, server: Server, github: FakeGitHub
) -> None:
    await register(server, manifest(github, name="restart-live"))
    decision = await api(
        server,
        "POST",
        "/api/v1/runbooks/restart-live/runs",
        "developer",
        json={"parameters": {"service": "db"}, "repo": REPO},
    )
    await switch(server, enabled=False)
    try:
        await approve(server, decision["id"])
        page = await log_in(context, server.keys["viewer"])
        await page.goto(f"/runs?decision_id={decision['id']}")
        row = page.locator("#runs-panel tbody tr").first
        await expect(row).to_contain_text("queued: actions are off", timeout=20_000)
        await row.get_by_role("link").click()
        status = page.locator("#run-status")
        await expect(status).to_contain_text("queued")
        await expect(status).to_contain_text("this page updates by itself")
        await page.evaluate("window.__stillTheSamePage = true")
        await screenshot(page, "run-queued")
    finally:
        await switch(server, enabled=True)
    await expect(status).to_contain_text("succeeded after 1 attempt(s)", timeout=20_000)
    await expect(page.locator("#run-log")).to_contain_text("restart.http_call")
    assert await page.evaluate("window.__stillTheSamePage") is True


async def tab_to(page: Page, selector: str, *, limit: int = 60) -> None:
    target = page.locator(selector)
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await target.evaluate("el => el === document.activeElement"):
            return
    pytest.fail(f"Tab never reached {selector}")


async def test_a_run_is_proposed_from_the_keyboard_with_focus_always_visible(
    context: BrowserContext, server: Server, github: FakeGitHub
) -> None:
    await register(server, manifest(github, name="restart-keys"))
    page = await log_in(context, server.keys["developer"])
    await page.goto("/runbooks/restart-keys")
    await tab_to(page, "#param-service")
    outline = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert outline[0] != "none", outline
    assert outline[1] != "0px", outline
    await page.keyboard.type("worker")
    await tab_to(page, "#run-repo")
    await page.keyboard.type(REPO)
    await page.keyboard.press("Enter")
    await expect(page.locator("#proposed")).to_contain_text("pending_approval")
    await tab_to(page, "#proposed a[href^='/runs']")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Runs", level=1)).to_be_visible()


async def test_the_new_pages_pass_axe_and_fit_360_pixels(
    context: BrowserContext, server: Server, github: FakeGitHub
) -> None:
    await register(server, manifest(github, name="restart-axe"))
    page = await log_in(context, server.keys["admin"])
    runs = await api(server, "GET", "/api/v1/runs", "viewer")
    paths = {"runbooks-page": "/runbooks", "runbook-page": "/runbooks/restart-axe"}
    paths["runs-page"] = "/runs"
    paths["error-page"] = "/runs/run_" + "0" * 28  # a 404: what went wrong, and a retry
    if runs["items"]:
        paths["run-page"] = f"/runs/{runs['items'][0]['id']}"
    found: dict[str, Any] = {}
    for name, path in paths.items():
        if violations := await checked_at_both_widths(page, name=name, path=path):
            found[path] = violations
    assert found == {}
    assert "run-page" in paths  # the earlier tests left runs behind to look at
