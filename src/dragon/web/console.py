"""The web console, served by the same app: its routes, static files, login redirects, HTML error
pages and the sliding session refresh."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dragon.api.access import GuardedRoute, SessionRequired
from dragon.api.problems import STATUS_BY_KIND, dragon_error_response
from dragon.api.sessions import SESSION_COOKIE, Session, SessionCodec
from dragon.domain.errors import DragonError, Unauthenticated
from dragon.web import governance, login, pages, playground_page, run_pages, runbook_pages
from dragon.web.problem_pages import ProblemPages, is_console_path, retry_target
from dragon.web.rendering import HERE, render

_static = StaticFiles(directory=HERE / "static")
static_router = APIRouter(route_class=GuardedRoute, include_in_schema=False)
ROUTERS = (
    login.router,
    pages.router,
    governance.router,
    runbook_pages.router,
    run_pages.router,
    playground_page.router,
    static_router,
)
_REFRESH_AFTER_SECONDS = 60.0


@static_router.get("/static/{path:path}")
async def static_file(path: str, request: Request) -> Response:
    """The console's stylesheet and script; public, cacheable, never a directory listing."""
    try:
        response = await _static.get_response(path, request.scope)
    except HTTPException:
        raise
    response.headers.setdefault("Cache-Control", "public, max-age=300")
    return response


def is_console_page(request: Request) -> bool:
    return is_console_path(request.url.path)


async def _login_redirect(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/login?next={quote(target, safe='/')}"
    if SESSION_COOKIE not in request.cookies:
        return RedirectResponse(location, status_code=303)
    # A cookie that is no longer a session (idle too long, too old): say so, and drop it.
    response = RedirectResponse(location + "&notice=expired", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DragonError)
    wants_html = "text/html" in request.headers.get("accept", "")
    if not (wants_html and is_console_page(request)):
        return await dragon_error_response(request, exc)
    if isinstance(exc, Unauthenticated) and request.method == "GET":
        # A session whose key was revoked (or a stale cookie): back to the login page, clean.
        response = RedirectResponse("/login?notice=expired", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response
    caller = getattr(request.state, "caller", None)  # set once access was granted
    return render(
        request,
        "error.html",
        principal=caller.principal if caller else None,
        status_code=STATUS_BY_KIND[exc.kind],
        error=exc,
        retry_url=retry_target(request.scope),
    )


# Sent by the console's own script on the fetches it makes by itself (live refresh, polling):
# those are not the person at the keyboard, so they never count as activity.
BACKGROUND_HEADER = b"x-dragon-background"


class SessionRefreshMiddleware:
    """Slides the idle timeout: a request on a session seen over a minute ago re-issues the
    cookie with a fresh last-seen time. Responses that set the cookie themselves win, and a
    page's background refresh never slides it, so an unattended page still times out."""

    def __init__(self, app: ASGIApp, *, codec: SessionCodec) -> None:
        self.app = app
        self.codec = codec

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def refreshing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                session: Session | None = scope.get("state", {}).get("session")
                headers = MutableHeaders(scope=message)
                sets_own = any(
                    v.startswith(f"{SESSION_COOKIE}=") for v in headers.getlist("set-cookie")
                )
                now = self.codec.touched(session).seen_at if session else 0.0
                background = any(name == BACKGROUND_HEADER for name, _ in scope["headers"])
                stale = now - session.seen_at > _REFRESH_AFTER_SECONDS if session else False
                if session and not sets_own and not background and stale:
                    secure = "; Secure" if scope.get("scheme") == "https" else ""
                    headers.append(
                        "set-cookie",
                        f"{SESSION_COOKIE}={self.codec.encode(self.codec.touched(session))}; "
                        f"HttpOnly; Max-Age={int(self.codec.max_age.total_seconds())}; Path=/; "
                        f"SameSite=strict{secure}",
                    )
            await send(message)

        await self.app(scope, receive, refreshing_send)


def install_console(app: FastAPI, *, codec: SessionCodec) -> None:
    app.state.sessions = codec
    for router in ROUTERS:
        app.include_router(router)
    app.add_exception_handler(SessionRequired, _login_redirect)
    app.add_exception_handler(DragonError, _error_page)
    app.add_middleware(SessionRefreshMiddleware, codec=codec)


def console_problem_pages(app: FastAPI) -> None:
    """Problems from the middleware around the routes (deadline, body limit) as pages too; the
    app adds this outside them."""
    app.add_middleware(ProblemPages)
