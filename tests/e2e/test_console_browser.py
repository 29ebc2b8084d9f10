"""The console in a real browser against a real server: log in, watch a webhook's incident
appear live, approve from the queue and find it in the audit log, a viewer refused, the
playground and its rate limit, keyboard use, 360 px, and axe-core on every page."""

from __future__ import annotations

import re
import uuid

import httpx
import orjson
import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.api.test_ingestion import fixture, github_headers
from tests.e2e.conftest import (
    Server,
    axe_violations,
    checked_at_both_widths,
    log_in,
    screenshot,
)

pytestmark = pytest.mark.one_pass(
    "sqlite", "the console as `make run` serves it; its store reads are tests/api on both"
)

RUNBOOK = {
    "action": "run_runbook",
    "title": "Run the log-cleanup runbook on staging",
    "environment": "staging",
    "rationale": "disk at 93%",
}


async def propose(server: Server, body: dict[str, object]) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/v1/decisions", json=body, headers=server.key("developer"))
        assert response.status_code == 201, response.text
        created: dict[str, object] = response.json()
        return created


def csp_violations(page: Page) -> list[str]:
    seen: list[str] = []
    page.on(
        "console",
        lambda message: (
            seen.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return seen


async def test_log_in_with_an_api_key_and_out_again(
    context: BrowserContext, server: Server
) -> None:
    page = await context.new_page()
    await page.goto("/incidents")
    await expect(page).to_have_url(re.compile(r"/login\?next=/incidents"))
    await page.get_by_label("API key").fill("drg_not-a-real-key")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("#api_key-error")).to_be_visible()
    await screenshot(page, "login-error")
    await page.get_by_label("API key").fill(server.keys["viewer"])
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/incidents$"))
    await expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_visible()
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["dragon_session"]["httpOnly"] is True
    assert cookies["dragon_session"]["sameSite"] == "Strict"
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(re.compile(r"/login\?notice=logged_out"))
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login"))


async def test_a_signed_webhook_appears_on_the_open_dashboard_without_a_reload(
    context: BrowserContext, server: Server
) -> None:
    page = await log_in(context, server.keys["viewer"])
    violations = csp_violations(page)
    panel = page.locator("#dashboard-panel")
    await expect(panel).to_have_attribute("data-live", "connected")
    before = int(await page.locator("[data-figure=open-total]").inner_text())
    await page.evaluate("window.__stillTheSamePage = true")
    await post_webhook(server)
    await expect(page.locator("[data-figure=open-total]")).to_have_text(str(before + 1))
    assert await page.evaluate("window.__stillTheSamePage") is True
    await expect(page.locator("#live-status")).to_contain_text("Dashboard updated")
    await screenshot(page, "dashboard")
    assert violations == []


async def post_webhook(server: Server) -> None:
    payload = fixture("github", "workflow_run.completed.failure")
    payload["workflow_run"]["head_sha"] = uuid.uuid4().hex + "abcdefgh"
    payload["workflow_run"]["name"] = f"e2e-{uuid.uuid4().hex[:8]}"
    payload["workflow_run"]["id"] = uuid.uuid4().int % 10**9  # a new run, not a redelivery
    body = orjson.dumps(payload)
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/webhooks/github", content=body, headers=github_headers(body, "workflow_run")
        )
        assert response.status_code == 202, response.text


async def test_a_dashboard_whose_session_ended_says_so_and_offers_a_retry(
    context: BrowserContext, server: Server
) -> None:
    page = await log_in(context, server.keys["viewer"])
    await expect(page.locator("#dashboard-panel")).to_have_attribute("data-live", "connected")
    await context.clear_cookies()
    await post_webhook(server)
    status = page.locator("#live-status")
    await expect(status).to_contain_text("Live updates stopped")
    await expect(status.get_by_role("button", name="Retry")).to_be_visible()
    await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    await expect(page.get_by_label("API key")).to_have_count(0)  # no login form swapped in
    await status.get_by_role("button", name="Retry").click()
    await expect(page).to_have_url(re.compile(r"/login\?next=/"))


async def test_an_approver_approves_and_the_audit_viewer_shows_it(
    browser_context_pair: tuple[BrowserContext, BrowserContext], server: Server
) -> None:
    approver_context, admin_context = browser_context_pair
    decision = await propose(server, RUNBOOK)
    page = await log_in(approver_context, server.keys["approver"])
    await page.goto("/approvals")
    card = page.locator(f"article[id='{decision['id']}']")
    await expect(card.get_by_text("medium", exact=True)).to_be_visible()
    await screenshot(page, "approvals")
    await card.get_by_label("Justification").fill("cleanup is safe on staging")
    await card.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status").first).to_have_text("Your approval was recorded.")
    await expect(page.locator(f"article[id='{decision['id']}']")).to_have_count(0)

    admin = await log_in(admin_context, server.keys["admin"])
    await admin.goto(f"/audit?target_id={decision['id']}")
    await expect(admin.get_by_text("Chain verified")).to_be_visible()
    rows = admin.locator("tbody tr")
    await expect(rows.filter(has_text="approval.approved")).to_have_count(1)
    await expect(rows.filter(has_text="decision.approved")).to_have_count(1)
    await expect(rows.filter(has_text="approval.approved")).to_contain_text('"via": "web"')
    await screenshot(admin, "audit")


async def test_a_viewer_sees_no_approve_button_and_a_forged_post_is_refused(
    context: BrowserContext, server: Server
) -> None:
    decision = await propose(server, {**RUNBOOK, "title": "viewer must not approve this"})
    page = await log_in(context, server.keys["viewer"])
    await page.goto("/approvals")
    card = page.locator(f"article[id='{decision['id']}']")
    await expect(card).to_be_visible()
    await expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    await expect(card.get_by_role("button", name="Reject")).to_have_count(0)
    status = await page.evaluate(
        """async (id) => {
            const token = document.querySelector('meta[name=csrf-token]').content;
            const body = new URLSearchParams({csrf_token: token, verdict: 'approve',
                                              justification: 'forged from the console'});
            const r = await fetch('/approvals/' + id, {method: 'POST', body});
            return r.status;
        }""",
        decision["id"],
    )
    assert status == 403
    async with httpx.AsyncClient(base_url=server.url) as http:
        read = await http.get(f"/api/v1/decisions/{decision['id']}", headers=server.key("viewer"))
    assert read.json()["status"] == "pending_approval"
    assert read.json()["approvals"] == []


async def test_the_playground_judges_a_scenario_and_then_limits_the_visitor(
    context: BrowserContext,
) -> None:
    page = await context.new_page()
    violations = csp_violations(page)
    await page.goto("/playground")
    await page.get_by_label("Preset scenario").select_option("production-rollback")
    await expect(page.get_by_label("Title")).to_have_value(
        "Roll checkout back to the previous release"
    )
    await page.get_by_role("button", name="Judge it").click()
    await expect(page.locator("#result-outcome")).to_have_text("Would wait for approval.")
    await expect(page.locator("#result-risk")).to_have_text("critical (80/100)")
    await expect(page.locator("#result-approval")).to_have_text(
        "2 approval(s) from approver or admin"
    )
    await expect(page.locator("#playground-stats")).to_contain_text("1 proposal judged")
    await screenshot(page, "playground")
    for _ in range(12):
        await page.get_by_role("button", name="Judge it").click()
        await expect(page.get_by_role("button", name="Judge it")).to_be_enabled()
        if await page.locator("#playground-error").is_visible():
            break
    await expect(page.locator("#playground-error")).to_contain_text("Too many tries")
    await expect(page.locator("#result-quota")).to_have_text(
        "0 tries left this hour from your address."
    )
    await screenshot(page, "playground-limited")
    assert violations == []


async def test_the_login_form_works_from_the_keyboard(
    context: BrowserContext, server: Server
) -> None:
    page = await context.new_page()
    await page.goto("/login")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    field = page.get_by_label("API key")
    for _ in range(5):
        await page.keyboard.press("Tab")
        if await field.evaluate("el => el === document.activeElement"):
            break
    await page.keyboard.type(server.keys["viewer"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


PAGES = [
    ("login", "/login", None),
    ("playground-page", "/playground", None),
    ("dashboard-page", "/", "admin"),
    ("incidents", "/incidents", "admin"),
    ("approvals-page", "/approvals", "admin"),
    ("policy", "/policy", "admin"),
    ("audit-page", "/audit", "admin"),
    ("keys", "/keys", "admin"),
]


async def test_every_page_passes_axe_and_fits_360_pixels(
    context: BrowserContext, server: Server
) -> None:
    await propose(server, {**RUNBOOK, "title": "a pending decision for the axe check"})
    admin = await log_in(context, server.keys["admin"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        items = (await http.get("/api/v1/incidents", headers=server.key("viewer"))).json()["items"]
    pages = list(PAGES)
    if items:
        pages.append(("incident", f"/incidents/{items[0]['id']}", "admin"))
    anonymous = await context.browser.new_context(base_url=server.url)  # type: ignore[union-attr]
    try:
        found: dict[str, object] = {}
        for name, path, who in pages:
            page = admin if who else await anonymous.new_page()
            if violations := await checked_at_both_widths(page, name=name, path=path):
                found[path] = violations
        # The simulator's result and a form's field errors are pages of their own.
        await admin.set_viewport_size({"width": 1280, "height": 800})
        await admin.goto("/policy")
        await admin.get_by_role("button", name="Simulate").click()
        await expect(admin.get_by_text("decisions replayed")).to_be_visible()
        await screenshot(admin, "policy-simulation")
        if violations := await axe_violations(admin):
            found["/policy/simulate"] = violations
        await admin.goto("/keys")
        await admin.get_by_role("button", name="Issue key").click()
        await expect(admin.locator("#name-error")).to_be_visible()
        if violations := await axe_violations(admin):
            found["/keys (errors)"] = violations
        assert found == {}
    finally:
        await anonymous.close()
