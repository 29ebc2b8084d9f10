"""How a run reads on the console: its state in words and the links in its result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dragon.domain.entities import Run
from dragon.domain.enums import RunStatus
from dragon.web.rendering import web_url


@dataclass(frozen=True)
class ResultLink:
    label: str
    url: str


def result_links(value: Any, at: str = "") -> list[ResultLink]:
    """Every http(s) URL in a run's result (a pull request, the rerun CI run), with the key
    path it sits under as its label; a step's result is nested under the step's id."""
    found: list[ResultLink] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(result_links(item, f"{at} / {key}" if at else str(key)))
    elif isinstance(value, list):
        for item in value:
            found.extend(result_links(item, at))
    elif isinstance(value, str) and at.endswith("url") and (url := web_url(value)):
        found.append(ResultLink(at.replace("_", " "), url))
    return found


def status_text(run: Run, *, held: str | None = None) -> str:
    """The run's state in words, so it never depends on a colour. `held` is why actions are
    turned off, when they are: a queued run then waits for that, not for a worker."""
    if run.status is RunStatus.QUEUED:
        if held is not None:
            return f"queued: actions are off ({held}); it starts once they are back on"
        if run.attempts:
            return (
                f"queued: attempt {run.attempts} of {run.max_attempts} failed, "
                f"next try after {run.next_attempt_at:%H:%M:%S} UTC"
            )
        return "queued: waiting for a worker"
    if run.status is RunStatus.RUNNING:
        return f"running: attempt {run.attempts} of {run.max_attempts}"
    if run.status is RunStatus.FAILED:
        return f"failed after {run.attempts} attempt(s): {run.error_code or 'error'}"
    return f"succeeded after {run.attempts} attempt(s)"


def is_active(run: Run) -> bool:
    return run.status in (RunStatus.QUEUED, RunStatus.RUNNING)
