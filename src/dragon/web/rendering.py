"""Rendering console pages: one Jinja2 environment, the context every page gets, form reading."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from dragon.api.sessions import SessionCodec
from dragon.domain.entities import Principal
from dragon.domain.enums import Role

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

NAV: tuple[tuple[str, str, Role], ...] = (
    ("/", "Dashboard", Role.VIEWER),
    ("/incidents", "Incidents", Role.VIEWER),
    ("/approvals", "Approvals", Role.VIEWER),
    ("/runbooks", "Runbooks", Role.VIEWER),
    ("/runs", "Runs", Role.VIEWER),
    ("/policy", "Policy", Role.VIEWER),
    ("/audit", "Audit log", Role.ADMIN),
    ("/keys", "API keys", Role.ADMIN),
    ("/playground", "Playground", Role.VIEWER),
)


def duration(seconds: float | None) -> str:
    """A duration for people: 42 s, 7 min, 3.5 h, 2.1 d; an em dash when there is none."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def web_url(value: str | None) -> str | None:
    """Only http(s) links are rendered: a vendor payload's `javascript:` URL stays text."""
    return value if value and value.lower().startswith(("https://", "http://")) else None


templates.env.filters["duration"] = duration
templates.env.filters["web_url"] = web_url
templates.env.filters["when"] = when
templates.env.filters["percent"] = percent


def codec_of(request: Request) -> SessionCodec:
    found: SessionCodec = request.app.state.sessions
    return found


def csrf_for(request: Request) -> str:
    session = getattr(request.state, "session", None)
    return codec_of(request).csrf_token(session.sid) if session else ""


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    nav = [
        (href, label)
        for href, label, role in NAV
        if principal is not None and principal.role.includes(role)
    ]
    response = templates.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "csrf_token": context.pop("csrf_token", None) or csrf_for(request),
            "nav": nav,
            "path": request.url.path,
            "Role": Role,
            **context,
        },
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def form_of(request: Request) -> dict[str, str]:
    """A URL-encoded form's fields (the first value of each); no multipart, no files."""
    raw = (await request.body()).decode("utf-8", "replace")
    return {name: values[0] for name, values in parse_qs(raw, keep_blank_values=True).items()}
