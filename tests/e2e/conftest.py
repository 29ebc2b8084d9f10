"""One real Dragon server (`dragon serve`, embedded worker on) and one headless Chromium for the
browser tests of a module. The browser is the system's Chromium, never a downloaded one; axe-core
comes from the npm package that .ci/run installs under var/npm."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from dragon.domain.enums import Role
from tests.api.test_access import fresh_database
from tests.conftest import WEBHOOK_SECRETS
from tests.support.api_keys import issue_keys
from tests.support.dragon_serve import start_dragon_serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "var" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET_KEY = "console-e2e-secret-key-0123456789abcdefghij"


@dataclass(frozen=True)
class Server:
    url: str
    keys: dict[str, str]

    def key(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def _issue_keys(url: str) -> dict[str, str]:
    roles = {
        "viewer": Role.VIEWER,
        "developer": Role.DEVELOPER,
        "approver": Role.APPROVER,
        "admin": Role.ADMIN,
    }
    return await issue_keys(url, roles, prefix="e2e")


@contextlib.asynccontextmanager
async def running_server(
    migrated_template: str, directory: Path, **extra_env: str
) -> AsyncIterator[Server]:
    """`dragon serve` on a free loopback port with its own fresh store, and its API keys."""
    url = await fresh_database(migrated_template, directory)
    keys = await _issue_keys(url)
    env = {
        **os.environ,
        "DRAGON_DATABASE_URL": url,
        "DRAGON_SECRET_KEY": SECRET_KEY,
        "DRAGON_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRETS["github"],
        "DRAGON_BOOTSTRAP_ADMIN": "false",
        "DRAGON_LIVE_POLL_SECONDS": "0.3",
        "DRAGON_WORKER_POLL_SECONDS": "0.2",
        "DRAGON_LOG_LEVEL": "warning",
        **extra_env,
    }
    served = await start_dragon_serve(env, directory=directory, name="serve")
    try:
        yield Server(url=served.url, keys=keys)
    finally:
        await served.stop(seconds=20)


@pytest.fixture(scope="module")
async def server(
    migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    async with running_server(migrated_template, tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail("the browser tests need Debian's chromium (bash .ci/run installs it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser, server: Server) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    made.set_default_timeout(10_000)
    yield made
    await made.close()


async def log_in(context: BrowserContext, api_key: str) -> Page:
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("API key").fill(api_key)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/")
    return page


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def axe_violations(page: Page) -> list[dict[str, object]]:
    """axe-core's serious and critical violations on the page as it is now. The script is
    evaluated through the DevTools protocol, so the page's CSP (no inline scripts) stays on."""
    if not await asyncio.to_thread(AXE.exists):
        pytest.fail("axe-core is missing under var/npm (`make test` installs it)")
    source = await asyncio.to_thread(AXE.read_text, encoding="utf-8")
    await page.evaluate(source)
    results = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def checked_at_both_widths(page: Page, *, name: str, path: str) -> list[dict[str, object]]:
    """`path` at 1280 and at 360 pixels wide: its h1 shows at both, nothing scrolls sideways at
    360, a screenshot of each (`name`, `name`-360); returns axe's violations at 1280."""
    violations: list[dict[str, object]] = []
    for width in (1280, 360):
        await page.set_viewport_size({"width": width, "height": 800})
        await page.goto(path)
        await expect(page.locator("h1")).to_be_visible()
        if width == 360:
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways at 360 px"
            await screenshot(page, f"{name}-360")
        else:
            await screenshot(page, name)
            violations = await axe_violations(page)
    return violations


@pytest.fixture
async def browser_context_pair(
    browser: Browser, server: Server
) -> AsyncIterator[tuple[BrowserContext, BrowserContext]]:
    """Two people at two browsers."""
    one = await browser.new_context(base_url=server.url)
    two = await browser.new_context(base_url=server.url)
    one.set_default_timeout(10_000)
    two.set_default_timeout(10_000)
    yield one, two
    await one.close()
    await two.close()
