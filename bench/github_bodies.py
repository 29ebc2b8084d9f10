"""The body the ingest benchmarks send: GitHub's published workflow_run failure example, brought
to one size (URL templates dropped, the title padded), so their figures are for the same payload."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "github"
    / "workflow_run.completed.failure.json"
)


def workflow_run_failure(
    body_bytes: int, *, edit: Callable[[dict[str, Any]], None] | None = None
) -> bytes:
    """The example, about `body_bytes` long once `edit` (if any) has changed it."""
    payload = json.loads(FIXTURE.read_text())
    if edit is not None:
        edit(payload)
    # Vendors' payloads vary in size; drop URL templates until the body is about the size.
    run = payload["workflow_run"]
    for owner in (payload["repository"], run["head_repository"], run["repository"]):
        for key in [k for k in owner if k.endswith("_url")]:
            if len(json.dumps(payload)) > body_bytes:
                owner.pop(key)
    body = json.dumps(payload)
    if len(body) < body_bytes:
        run["display_title"] = "x" * (body_bytes - len(body))
        body = json.dumps(payload)
    return body.encode()
