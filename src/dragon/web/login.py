"""Logging in to the console with an API key, and logging out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from dragon.api.access import GuardedRoute, services
from dragon.api.sessions import LOGIN_COOKIE, SESSION_COOKIE
from dragon.domain.errors import Unauthenticated
from dragon.services.container import Services
from dragon.web.rendering import codec_of, form_of, render

router = APIRouter(route_class=GuardedRoute, include_in_schema=False)
_NOTICES = {
    "logged_out": "You have logged out.",
    "expired": "Your session has ended; log in again.",
}


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host` or a full URL someone slipped into the link."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: object) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        **kw,  # type: ignore[arg-type]
    )


def _login_page(
    request: Request,
    *,
    status_code: int = 200,
    error: str | None = None,
    form_error: str | None = None,
    next_path: str = "/",
) -> Response:
    codec = codec_of(request)
    nonce = request.cookies.get(LOGIN_COOKIE) or codec.new_nonce()
    response = render(
        request,
        "login.html",
        principal=None,
        status_code=status_code,
        csrf_token=codec.csrf_token("login:" + nonce),
        error=error,
        form_error=form_error,
        next_path=next_path,
        notice=_NOTICES.get(request.query_params.get("notice", "")),
    )
    set_cookie(request, response, LOGIN_COOKIE, nonce, max_age=3600, path="/login")
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _login_page(request, next_path=safe_next(request.query_params.get("next")))


@router.post("/login")
async def login(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    form = await form_of(request)
    codec = codec_of(request)
    next_path = safe_next(form.get("next"))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not codec.csrf_valid(form.get("csrf_token"), "login:" + nonce):
        return _login_page(
            request,
            status_code=400,
            form_error="This form expired or did not come from Dragon. Try again.",
            next_path=next_path,
        )
    api_key = form.get("api_key", "").strip()
    if not api_key:
        return _login_page(
            request, status_code=422, error="Enter your API key.", next_path=next_path
        )
    try:
        _, key_id = await svc.auth.login(
            api_key, client_address=request.client.host if request.client else None
        )
    except Unauthenticated as exc:
        return _login_page(request, status_code=401, error=exc.message, next_path=next_path)
    session = codec.start(key_id)
    response = RedirectResponse(next_path, status_code=303)
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        codec.encode(session),
        max_age=int(codec.max_age.total_seconds()),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/login?notice=logged_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
