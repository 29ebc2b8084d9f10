"""JSON responses serialized once by pydantic-core.

Handlers return `json_response(model)`; the route's `response_model` still documents the
schema, but FastAPI passes a ready Response through instead of dumping and re-validating it.
"""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response


def json_response(
    model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def json_list_response(models: list[BaseModel]) -> Response:
    body = b"[" + b",".join(m.model_dump_json().encode() for m in models) + b"]"
    return Response(body, media_type="application/json")
