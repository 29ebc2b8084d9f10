"""One error envelope: RFC 9457 problem+json with a stable `code` (listed in docs/errors.md)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from dragon.domain.errors import DragonError, ErrorKind

PROBLEM_TYPE = "application/problem+json"
log = structlog.get_logger("dragon.api")

STATUS_BY_KIND = {
    ErrorKind.MALFORMED: 400,
    ErrorKind.INVALID: 422,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UNAVAILABLE: 503,
}
_HTTP_CODES = {404: "route_not_found", 405: "method_not_allowed", 413: "body_too_large"}
_RESERVED = frozenset(
    {"type", "title", "status", "detail", "code", "correlation_id", "errors", "headers"}
)


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    correlation_id: str | None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:dragon:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "correlation_id": correlation_id,
    }
    if errors is not None:
        body["errors"] = errors
    body.update({k: v for k, v in extra.items() if k not in body})
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers
    )


def correlation_id_of(request: Request) -> str | None:
    return getattr(request.state, "correlation_id", None)


def _field_errors(exc: RequestValidationError) -> tuple[bool, list[dict[str, Any]]]:
    malformed = False
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        kind = str(err.get("type", ""))
        if kind == "json_invalid":
            malformed = True
        message = "unknown field" if kind == "extra_forbidden" else str(err.get("msg", "invalid"))
        errors.append(
            {
                "location": loc[0] if loc else "body",
                "field": ".".join(loc[1:]),
                "message": message,
                "type": kind,
            }
        )
    return malformed, errors


async def dragon_error_response(request: Request, exc: DragonError) -> Response:
    """The problem+json answer to a DragonError (the console renders its own pages instead)."""
    status = STATUS_BY_KIND[exc.kind]
    headers = None
    if status in (429, 503):
        headers = {"Retry-After": str(exc.details.get("retry_after", 5))}
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="dragon"'}
    details = dict(exc.details)
    errors = details.pop("errors", None)
    # A detail named like an envelope member (`status`, say) must not replace it, nor turn
    # the answer into a 500 by colliding with problem()'s own parameters.
    extra = {k: v for k, v in details.items() if k not in _RESERVED}
    return problem(
        status,
        exc.code,
        exc.message,
        correlation_id=correlation_id_of(request),
        errors=errors,
        headers=headers,
        **extra,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DragonError, dragon_error_response)  # type: ignore[arg-type]

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        malformed, errors = _field_errors(exc)
        if malformed:
            return problem(
                400,
                "json_invalid",
                "the request body is not valid JSON",
                correlation_id=correlation_id_of(request),
                errors=errors,
            )
        return problem(
            422,
            "validation_failed",
            f"{len(errors)} field(s) are invalid",
            correlation_id=correlation_id_of(request),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return problem(
            exc.status_code,
            code,
            str(exc.detail),
            correlation_id=correlation_id_of(request),
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return problem(
            500,
            "internal_error",
            "Dragon failed to handle this request; the correlation id finds it in the logs",
            correlation_id=correlation_id_of(request),
        )
