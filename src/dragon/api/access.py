"""Who may call what. Every route of the app must appear in ACCESS, or the app refuses to start.

ACCESS is the single source of truth: one app-wide dependency enforces it on every API route,
so a new route cannot ship without a decision about who may call it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dragon.api.sessions import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Session, SessionCodec
from dragon.domain.entities import Principal
from dragon.domain.enums import Role
from dragon.domain.errors import Forbidden, Unauthenticated
from dragon.services.container import Services
from dragon.services.context import Caller

PUBLIC: Final = "public"
Access = Role | str
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionRequired(Unauthenticated):
    """No credentials on a page a browser asked for: the console answers with its login page."""


ACCESS: dict[tuple[str, str], Access] = {
    # Public allowlist: probes and documentation.
    ("GET", "/livez"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # Prometheus scrapes it without an API key; DRAGON_METRICS_TOKEN, when set, guards it.
    ("GET", "/metrics"): PUBLIC,
    # Webhooks: public, each authenticated by its sender's signature or token.
    ("POST", "/webhooks/github"): PUBLIC,
    ("POST", "/webhooks/gitlab"): PUBLIC,
    ("POST", "/webhooks/jenkins"): PUBLIC,
    ("POST", "/webhooks/alertmanager"): PUBLIC,
    # Slack's Approve/Reject buttons: public, authenticated by Slack's signing secret.
    ("POST", "/integrations/slack/actions"): PUBLIC,
    # Events from any tool, and the original system's routes for them.
    ("POST", "/api/v1/events"): Role.DEVELOPER,
    ("POST", "/api/ci/event"): Role.DEVELOPER,
    ("POST", "/api/observability/alert"): Role.DEVELOPER,
    # The inbox.
    ("GET", "/api/v1/deliveries"): Role.ADMIN,
    ("GET", "/api/v1/deliveries/{delivery_id}"): Role.ADMIN,
    ("POST", "/api/v1/deliveries/{delivery_id}/retry"): Role.ADMIN,
    # Notifications: failures and retries.
    ("GET", "/api/v1/notifications"): Role.ADMIN,
    ("GET", "/api/v1/notifications/{notification_id}"): Role.ADMIN,
    ("POST", "/api/v1/notifications/{notification_id}/retry"): Role.ADMIN,
    # Identity.
    ("GET", "/api/v1/me"): Role.VIEWER,
    # Incidents.
    ("GET", "/api/v1/incidents"): Role.VIEWER,
    ("POST", "/api/v1/incidents"): Role.DEVELOPER,
    ("GET", "/api/v1/incidents/{incident_id}"): Role.VIEWER,
    ("GET", "/api/v1/incidents/{incident_id}/signals"): Role.VIEWER,
    ("GET", "/api/v1/incidents/{incident_id}/links"): Role.VIEWER,
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): Role.DEVELOPER,
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): Role.DEVELOPER,
    # Decisions and approvals.
    ("GET", "/api/v1/decisions"): Role.VIEWER,
    ("POST", "/api/v1/decisions"): Role.DEVELOPER,
    ("GET", "/api/v1/decisions/{decision_id}"): Role.VIEWER,
    ("POST", "/api/v1/decisions/{decision_id}/approve"): Role.APPROVER,
    ("POST", "/api/v1/decisions/{decision_id}/reject"): Role.APPROVER,
    ("POST", "/api/decisions"): Role.DEVELOPER,
    ("POST", "/api/approvals"): Role.APPROVER,
    # Runs and the actions kill switch.
    ("GET", "/api/v1/runs"): Role.VIEWER,
    ("GET", "/api/v1/runs/{run_id}"): Role.VIEWER,
    ("GET", "/api/v1/actions/switch"): Role.VIEWER,
    ("PUT", "/api/v1/actions/switch"): Role.ADMIN,
    # Runbooks.
    ("POST", "/api/v1/runbooks"): Role.ADMIN,
    ("GET", "/api/v1/runbooks"): Role.VIEWER,
    ("GET", "/api/v1/runbooks/{name}"): Role.VIEWER,
    ("POST", "/api/v1/runbooks/{name}/runs"): Role.DEVELOPER,
    # The original system's action routes: each proposes a decision.
    ("POST", "/api/generate"): Role.DEVELOPER,
    ("POST", "/api/pr"): Role.DEVELOPER,
    ("POST", "/api/create-autofix-pr"): Role.DEVELOPER,
    # Policy.
    ("GET", "/api/v1/policy"): Role.VIEWER,
    ("PUT", "/api/v1/policy"): Role.ADMIN,
    ("GET", "/api/v1/policy/versions"): Role.VIEWER,
    # Audit.
    ("GET", "/api/v1/audit"): Role.ADMIN,
    ("GET", "/api/v1/audit/verify"): Role.ADMIN,
    # Triage: the gatekeeper evaluates text and creates nothing.
    ("POST", "/api/v1/triage"): Role.DEVELOPER,
    ("POST", "/api/support/evaluate"): Role.DEVELOPER,
    # API keys.
    ("GET", "/api/v1/keys"): Role.ADMIN,
    ("POST", "/api/v1/keys"): Role.ADMIN,
    ("DELETE", "/api/v1/keys/{key_id}"): Role.ADMIN,
    # Dashboard figures, as JSON and as a server-sent-events stream.
    ("GET", "/api/v1/dashboard"): Role.VIEWER,
    ("GET", "/api/v1/dashboard/stream"): Role.VIEWER,
    # Playground: public, rate limited per address, isolated from real data.
    ("POST", "/api/v1/playground/decisions"): PUBLIC,
    ("GET", "/api/v1/playground/scenarios"): PUBLIC,
    ("GET", "/api/v1/playground/stats"): PUBLIC,
    ("POST", "/api/playground/submit-decision"): PUBLIC,
    ("GET", "/api/playground/scenarios"): PUBLIC,
    # Console (web/): the login page, static files and the playground page are public; every
    # other page needs a session (or a bearer token), and a form post its CSRF token.
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/static/{path:path}"): PUBLIC,
    ("GET", "/playground"): PUBLIC,
    ("POST", "/logout"): Role.VIEWER,
    ("GET", "/"): Role.VIEWER,
    ("GET", "/dashboard/panel"): Role.VIEWER,
    ("GET", "/incidents"): Role.VIEWER,
    ("GET", "/incidents/{incident_id}"): Role.VIEWER,
    ("POST", "/incidents/{incident_id}/{move}"): Role.DEVELOPER,
    ("GET", "/approvals"): Role.VIEWER,
    ("POST", "/approvals/{decision_id}"): Role.APPROVER,
    ("GET", "/policy"): Role.VIEWER,
    ("POST", "/policy/simulate"): Role.VIEWER,
    ("GET", "/audit"): Role.ADMIN,
    ("GET", "/keys"): Role.ADMIN,
    ("POST", "/keys"): Role.ADMIN,
    ("POST", "/keys/{key_id}/revoke"): Role.ADMIN,
    ("GET", "/runbooks"): Role.VIEWER,
    ("GET", "/runbooks/{name}"): Role.VIEWER,
    ("POST", "/runbooks/{name}/runs"): Role.DEVELOPER,
    ("GET", "/runs"): Role.VIEWER,
    ("GET", "/runs/panel"): Role.VIEWER,
    ("GET", "/runs/{run_id}"): Role.VIEWER,
    ("GET", "/runs/{run_id}/panel"): Role.VIEWER,
}


def route_keys(routes: Sequence[BaseRoute]) -> set[tuple[str, str]]:
    """Every (method, path) served. `app.routes` holds one wrapper per included router rather
    than the router's routes (FastAPI 0.137+), so walk the flattened route contexts. The path
    is the route's own, which is what `enforce_access` finds in the request scope."""
    keys: set[tuple[str, str]] = set()
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, Route) and route.methods:
            keys.update((m, route.path) for m in route.methods if m != "HEAD")
    return keys


def check_table_covers(routes: Sequence[BaseRoute]) -> None:
    missing = sorted(route_keys(routes) - ACCESS.keys())
    if missing:
        raise RuntimeError(f"routes missing from the access table: {missing}")
    unguarded = sorted(
        context.original_route.path
        for context in iter_route_contexts(routes)
        if isinstance(context.original_route, APIRoute)
        and not isinstance(context.original_route, GuardedRoute)
    )
    if unguarded:
        raise RuntimeError(f"routers must use route_class=GuardedRoute: {unguarded}")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "use `Authorization: Bearer <API key or JWT>`", code="credentials_invalid"
            )
        return token.strip()
    return request.headers.get("x-api-key") or None


async def enforce_access(request: Request) -> None:
    """Authenticate, check the role, and leave a Caller behind. GuardedRoute runs it before the
    body is read; it is also the app-wide dependency, which then finds the work done."""
    if getattr(request.state, "access_checked", False):
        return
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    required = ACCESS.get((request.method, path or ""))
    if required is None:
        # Unreachable while check_table_covers ran at start-up; refuse rather than allow.
        raise Forbidden("this route has no access rule", code="route_unlisted")
    if required == PUBLIC:
        request.state.access_checked = True
        return
    token = bearer_token(request)
    services: Services = request.app.state.services
    if token is not None:
        principal = await services.auth.authenticate(token)
    else:
        principal = await _session_principal(request, services)
    role = Role(required)
    if not principal.role.includes(role):
        raise Forbidden(
            f"this route needs the {role} role; you have {principal.role}",
            code="role_insufficient",
            required=role.value,
        )
    request.state.caller = Caller(
        principal=principal,
        correlation_id=getattr(request.state, "correlation_id", None),
        client_address=request.client.host if request.client else None,
    )
    request.state.access_checked = True


async def _session_principal(request: Request, services: Services) -> Principal:
    """The console's way in: a signed session cookie, and for anything but a read, the CSRF
    token of that session (a header from scripts, a form field from plain forms)."""
    codec: SessionCodec | None = getattr(request.app.state, "sessions", None)
    session: Session | None = None
    if codec is not None:
        session = codec.decode(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if "text/html" in request.headers.get("accept", "") and request.method == "GET":
            raise SessionRequired("log in to see this page", code="authentication_required")
        raise Unauthenticated("this route needs credentials", code="authentication_required")
    assert codec is not None
    if request.method not in _SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER) or await _form_field(request, CSRF_FIELD)
        if not codec.csrf_valid(token, session.sid):
            raise Forbidden(
                "the form's CSRF token is missing or does not match this session; reload the "
                "page and try again",
                code="csrf_invalid",
            )
    principal = await services.auth.principal_for_key(session.key_id)
    request.state.session = session
    return principal


async def _form_field(request: Request, name: str) -> str | None:
    """One field of a URL-encoded form. The body is cached on the request, so the handler
    reads the same bytes."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    values = parse_qs((await request.body()).decode("utf-8", "replace")).get(name)
    return values[0] if values else None


class GuardedRoute(APIRoute):
    """Checks access before FastAPI reads and parses the body, so a caller without the right
    credentials learns nothing from how its body would have been judged."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await enforce_access(request)
            return await handler(request)

        return guarded


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, a thread hop per request for what is only an attribute read.
async def caller(request: Request) -> Caller:
    found: Caller | None = getattr(request.state, "caller", None)
    if found is None:
        raise Unauthenticated("this route needs credentials", code="authentication_required")
    return found


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def principal_of(request: Request) -> Principal:
    return (await caller(request)).principal
