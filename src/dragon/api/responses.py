"""JSON responses serialized once by pydantic-core, or for listing pages by orjson.

Handlers return `json_response(model)`; the route's `response_model` still documents the
schema, but FastAPI passes a ready Response through instead of dumping and re-validating it.
A listing page of stored entities is written by orjson from their field values
(`json_page_response`): the same JSON as pydantic's for plain fields (a test compares them),
at a quarter of the cost, which is a large part of a page request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from dragon.api.schemas import Response as Out

# UTC datetimes end in "Z", as pydantic writes them.
_ORJSON_OPTIONS = orjson.OPT_UTC_Z


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


def json_page_response(
    model: type[Out], items: Sequence[object], **page: str | int | None
) -> Response:
    """`{"items": [...], **page}`: each item the fields of `model` taken from a stored entity
    (Response.trusted_values); `model` must have plain fields only (no nested models)."""
    body: dict[str, Any] = {"items": [model.trusted_values(item) for item in items], **page}
    return Response(orjson.dumps(body, option=_ORJSON_OPTIONS), media_type="application/json")
