"""A problem a browser meets on a console page is a page that says what went wrong and offers a
retry: a timed-out request, an oversized form, an unserved method. API clients still get
problem+json."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from dragon.api.problems import problem
from dragon.web.problem_pages import ProblemPages, retry_target
from tests.api.console_session import log_in, page
from tests.conftest import Keys

HTML = {"accept": "text/html"}


async def timed_out(scope: Scope, receive: Receive, send: Send) -> None:
    """What the deadline middleware answers when a request runs past its deadline."""
    response = problem(
        503,
        "request_timeout",
        "the request took longer than 30 s and was stopped; retry it",
        correlation_id="c0ffee",
        headers={"Retry-After": "1"},
    )
    await response(scope, receive, send)


async def test_a_timed_out_page_says_so_and_links_to_a_retry() -> None:
    transport = httpx.ASGITransport(app=ProblemPages(timed_out))
    async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as client:
        shown = await client.get("/runs?status=running", headers=HTML)
        assert shown.status_code == 503
        assert shown.headers["content-type"].startswith("text/html")
        assert shown.headers["retry-after"] == "1"
        assert "the request took too long and was stopped" in shown.text
        assert '<a href="/runs?status=running">Try again</a>' in shown.text
        posted = await client.post("/runbooks/restart-web/runs", headers=HTML)
        assert '<a href="/runbooks/restart-web">Try again</a>' in posted.text
        script = await client.get("/runs", headers={"accept": "application/json"})
        assert script.headers["content-type"] == "application/problem+json"
        api = await client.get("/api/v1/runs", headers=HTML)
        assert api.headers["content-type"] == "application/problem+json"


def test_a_form_posts_retry_leads_back_to_the_form() -> None:
    def target(method: str, path: str) -> str:
        return retry_target({"type": "http", "method": method, "path": path, "headers": []})

    assert target("POST", "/approvals/dec_1") == "/approvals"
    assert target("POST", "/keys/key_1/revoke") == "/keys"
    assert target("POST", "/incidents/inc_1/acknowledge") == "/incidents/inc_1"
    assert target("POST", "/policy/simulate") == "/policy"
    assert target("POST", "/somewhere/else") == "/"


async def test_an_oversized_form_and_an_unserved_method_get_pages(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await log_in(client, keys.admin)
    huge = await client.post("/keys", data={"name": "x" * (2 * 1024 * 1024)}, headers=HTML)
    assert huge.status_code == 413
    assert huge.headers["content-type"].startswith("text/html")
    assert '<a href="/keys">Try again</a>' in huge.text
    assert "content-security-policy" in huge.headers
    wrong = await page(client, "/logout")
    assert wrong.status_code == 405
    assert "<h1>" in wrong.text
