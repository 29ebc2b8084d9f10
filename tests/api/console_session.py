"""Logging a test client in to the console the way a browser does: read the form, post it."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, api_key: str) -> httpx.Response:
    form = await client.get("/login", headers={"accept": "text/html"})
    assert form.status_code == 200, form.text
    response = await client.post(
        "/login",
        data={"api_key": api_key, "csrf_token": csrf_of(form.text), "next": "/"},
        headers={"accept": "text/html"},
    )
    assert response.status_code == 303, response.text
    return response


async def page(client: httpx.AsyncClient, path: str) -> httpx.Response:
    return await client.get(path, headers={"accept": "text/html"})


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, str], *, from_page: str
) -> httpx.Response:
    """Post a form with the CSRF token of the page it was on, as the browser would."""
    token = csrf_of((await page(client, from_page)).text)
    return await client.post(
        path, data={"csrf_token": token, **data}, headers={"accept": "text/html"}
    )
