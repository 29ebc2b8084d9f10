"""Console sessions: API-key login, cookie flags, CSRF on every form, idle timeout, logout."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from dragon.api.sessions import SESSION_COOKIE
from tests.api.console_session import csrf_of, log_in, page, post_form
from tests.conftest import FakeClock, Keys


def session_cookie_header(response: httpx.Response) -> str:
    [header] = [
        h for h in response.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")
    ]
    return header


async def test_login_with_an_api_key_sets_an_httponly_samesite_strict_cookie(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await log_in(client, keys.viewer)
    assert response.headers["location"] == "/"
    header = session_cookie_header(response).lower()
    assert "httponly" in header
    assert "samesite=strict" in header
    assert "secure" not in header  # plain http in this test
    assert keys.viewer not in response.headers.get("set-cookie", "")
    dashboard = await page(client, "/")
    assert dashboard.status_code == 200
    assert "viewer" in dashboard.text
    assert keys.viewer not in dashboard.text


async def test_the_session_cookie_is_secure_under_https(app: FastAPI, keys: Keys) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://dragon.test") as https:
        response = await log_in(https, keys.viewer)
        assert "secure" in session_cookie_header(response).lower()
        hsts = (await page(https, "/login")).headers["strict-transport-security"]
        assert hsts.startswith("max-age=")


async def test_a_wrong_key_is_refused_with_the_error_next_to_the_field(
    client: httpx.AsyncClient,
) -> None:
    form = await page(client, "/login")
    response = await client.post(
        "/login", data={"api_key": "drg_" + "x" * 43, "csrf_token": csrf_of(form.text)}
    )
    assert response.status_code == 401
    assert 'aria-invalid="true"' in response.text
    assert 'id="api_key-error"' in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_a_jwt_or_anything_but_an_api_key_cannot_open_a_session(
    client: httpx.AsyncClient,
) -> None:
    form = await page(client, "/login")
    response = await client.post(
        "/login", data={"api_key": "eyJhbGciOi.x.y", "csrf_token": csrf_of(form.text)}
    )
    assert response.status_code == 401
    assert "drg_" in response.text


async def test_a_login_post_without_the_forms_token_is_refused(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await page(client, "/login")  # the nonce cookie exists, but the token is forged
    response = await client.post("/login", data={"api_key": keys.admin, "csrf_token": "forged"})
    assert response.status_code == 400
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_a_browser_without_a_session_is_sent_to_the_login_page(
    client: httpx.AsyncClient,
) -> None:
    response = await page(client, "/incidents?status=open")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/incidents%3Fstatus%3Dopen"


async def test_an_api_client_without_credentials_gets_a_problem_not_a_redirect(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/incidents")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"


async def test_login_returns_to_the_page_asked_for_but_never_to_another_site(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for target, expected in (("/approvals", "/approvals"), ("//evil.example", "/")):
        form = await page(client, f"/login?next={target}")
        response = await client.post(
            "/login",
            data={"api_key": keys.viewer, "csrf_token": csrf_of(form.text), "next": target},
        )
        assert response.headers["location"] == expected


async def test_a_tampered_session_cookie_is_not_a_session(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await log_in(client, keys.viewer)
    value = client.cookies[SESSION_COOKIE]
    body, signature = value.split(".")
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, body + "." + signature[:-2] + "AA")
    assert (await page(client, "/")).status_code == 303


async def test_a_session_ends_after_the_idle_timeout(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    await log_in(client, keys.viewer)
    clock.advance(minutes=29)
    assert (await page(client, "/")).status_code == 200
    clock.advance(minutes=29)  # the request above slid the timeout forward
    assert (await page(client, "/")).status_code == 200
    clock.advance(minutes=31)
    ended = await page(client, "/incidents")
    assert ended.status_code == 303
    assert ended.headers["location"] == "/login?next=/incidents&notice=expired"
    assert 'dragon_session=""' in ended.headers["set-cookie"]
    login = await page(client, ended.headers["location"])
    assert "Your session has ended; log in again." in login.text


async def test_a_session_ends_at_its_maximum_age_even_when_active(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    await log_in(client, keys.viewer)
    for _ in range(25):
        clock.advance(minutes=29)
        await page(client, "/")
    assert (await page(client, "/")).status_code == 303


async def test_revoking_the_key_ends_its_console_sessions(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await log_in(client, keys.viewer)
    listed = (await client.get("/api/v1/keys", headers=keys.of("admin"))).json()
    key_id = next(k["id"] for k in listed if k["name"] == "viewer")
    assert (await client.delete(f"/api/v1/keys/{key_id}", headers=keys.of("admin"))).is_success
    api = await client.get("/api/v1/me")  # the session names a revoked key
    assert api.status_code == 401
    assert api.json()["code"] == "credentials_invalid"
    response = await page(client, "/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?notice=expired"
    assert 'dragon_session=""' in response.headers["set-cookie"]


async def test_logout_ends_the_session(client: httpx.AsyncClient, keys: Keys) -> None:
    await log_in(client, keys.viewer)
    response = await post_form(client, "/logout", {}, from_page="/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?notice=logged_out"
    assert (await page(client, "/")).status_code == 303


@pytest.mark.parametrize("token", [None, "forged"])
async def test_a_session_post_without_its_csrf_token_is_refused(
    client: httpx.AsyncClient, keys: Keys, token: str | None
) -> None:
    await log_in(client, keys.admin)
    data = {"name": "sneaky", "role": "admin"}
    if token:
        data["csrf_token"] = token
    response = await client.post("/keys", data=data)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_invalid"
    names = [k["name"] for k in (await client.get("/api/v1/keys", headers=keys.of("admin"))).json()]
    assert "sneaky" not in names


async def test_the_csrf_token_of_one_session_does_not_work_in_another(
    app: FastAPI, keys: Keys
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as one,
        httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as two,
    ):
        await log_in(one, keys.admin)
        await log_in(two, keys.admin)
        token_of_one = csrf_of((await page(one, "/keys")).text)
        response = await two.post(
            "/keys", data={"name": "crossed", "role": "viewer", "csrf_token": token_of_one}
        )
        assert response.status_code == 403
        assert response.json()["code"] == "csrf_invalid"


async def test_login_is_recorded_in_the_audit_log(client: httpx.AsyncClient, keys: Keys) -> None:
    await log_in(client, keys.approver)
    events = (
        await client.get(
            "/api/v1/audit", params={"action": "session.started"}, headers=keys.of("admin")
        )
    ).json()["items"]
    assert [e["actor_name"] for e in events] == ["approver"]
    assert keys.approver not in str(events)


async def test_a_pages_background_refresh_does_not_keep_an_idle_session_alive(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    await log_in(client, keys.viewer)
    background = {"accept": "text/html", "x-dragon-background": "1"}
    for _ in range(3):  # an unattended dashboard refreshing itself every ten minutes
        clock.advance(minutes=10)
        refreshed = await client.get("/dashboard/panel", headers=background)
        assert refreshed.status_code == 200
        assert SESSION_COOKIE not in refreshed.headers.get("set-cookie", "")
    clock.advance(minutes=1)  # 31 minutes since the person last did anything
    assert (await client.get("/dashboard/panel", headers=background)).status_code == 303
    # The same refreshes made by the person (no header) do count as activity.
    await log_in(client, keys.viewer)
    for _ in range(4):
        clock.advance(minutes=10)
        assert (await page(client, "/dashboard/panel")).status_code == 200
