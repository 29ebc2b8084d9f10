"""Runbook manifests: named, versioned lists of steps drawn from the action catalog, plus
`http_call` and `notify`. A manifest (JSON)::

    {
      "name": "rerun-and-tell",                 # ^[a-z][a-z0-9-]{0,63}$
      "version": "1.0.0",                       # semantic version
      "description": "Rerun the failed jobs, then say so on the pull request",
      "parameters": [                           # optional
        {"name": "workflow_run_id", "type": "integer", "description": "..."},
        {"name": "pull_number", "type": "integer", "required": false, "default": 1}
      ],
      "steps": [                                # 1..50, run in order
        {"id": "rerun", "action": "rerun_job",
         "with": {"workflow_run_id": "{{ params.workflow_run_id }}"}},
        {"id": "tell", "action": "comment",
         "with": {"body": "rerun", "pull_number": "{{ params.pull_number }}"}}
      ]
    }

Validation reports every problem at once, each naming its field with the expected format and
an example; unknown fields are refused. `{{ params.NAME }}` in a step's `with` is replaced by
the run's parameter; nothing else is evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dragon.domain.actions import CATALOG
from dragon.domain.errors import ValidationFailed

NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
STEP_ID = re.compile(r"[a-z][a-z0-9_-]{0,63}")
# semver.org's own expression.
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
TEMPLATE = re.compile(r"\{\{\s*params\.([a-z][a-z0-9_]{0,63})\s*\}\}")
HTTP_CALL, NOTIFY = "http_call", "notify"
# A runbook may not start another: no recursion, no unbounded fan-out.
STEP_ACTIONS = frozenset((set(CATALOG) - {"run_runbook"}) | {HTTP_CALL, NOTIFY})
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_STEPS = 50
MAX_MESSAGE = 2000
_NOTIFY = {"message", "escalate"}
MAX_PARAMETERS = 30

_TOP = {"name", "version", "description", "parameters", "steps"}
_PARAM = {"name", "type", "description", "required", "default"}
_STEP = {"id", "action", "with", "description"}


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    expected: str = ""
    example: str = ""

    def as_error(self) -> dict[str, str]:
        found = {"location": "body", "field": self.field, "message": self.message}
        if self.expected:
            found["expected"] = self.expected
        if self.example:
            found["example"] = self.example
        return found


def _is(value: object, kind: str) -> bool:
    if kind != "boolean" and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, field: str, message: str, expected: str = "", example: str = "") -> None:
        self.problems.append(Problem(field, message, expected, example))

    def unknown(self, data: dict[str, Any], known: set[str], at: str) -> None:
        for key in sorted(set(data) - known):
            self.add(f"{at}{key}", "unknown field", f"one of: {', '.join(sorted(known))}")

    def text(
        self,
        data: dict[str, Any],
        key: str,
        at: str,
        *,
        pattern: re.Pattern[str] | None,
        expected: str,
        example: str,
        required: bool = True,
    ) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add(f"{at}{key}", "is required", expected, example)
            return None
        if not isinstance(value, str) or (pattern and not pattern.fullmatch(value)) or not value:
            self.add(f"{at}{key}", f"{value!r} does not match", expected, example)
            return None
        if "\x00" in value:  # stored as text: PostgreSQL cannot hold NUL there
            self.add(f"{at}{key}", "holds a NUL character", expected, example)
            return None
        return value


def validate_manifest(data: object) -> dict[str, Any]:
    """The manifest, checked; raises ValidationFailed listing every problem."""
    check = _Checker()
    if not isinstance(data, dict):
        raise ValidationFailed("a runbook manifest is a JSON object", code="runbook_invalid")
    check.unknown(data, _TOP, "")
    check.text(
        data,
        "name",
        "",
        pattern=NAME,
        expected="^[a-z][a-z0-9-]{0,63}$",
        example="restart-flaky-ci",
    )
    check.text(
        data,
        "version",
        "",
        pattern=SEMVER,
        expected="a semantic version MAJOR.MINOR.PATCH",
        example="1.0.0",
    )
    description = check.text(
        data,
        "description",
        "",
        pattern=None,
        expected="1 to 2000 characters",
        example="Rerun the failed jobs",
    )
    if description is not None and len(description) > 2000:
        check.add("description", "is too long", "1 to 2000 characters")
    params = _parameters(check, data.get("parameters", []))
    _steps(check, data.get("steps"), params)
    if check.problems:
        raise ValidationFailed(
            f"the runbook manifest has {len(check.problems)} problem(s): "
            + "; ".join(f"{p.field}: {p.message}" for p in check.problems),
            code="runbook_invalid",
            errors=[p.as_error() for p in check.problems],
        )
    return data


def _parameters(check: _Checker, items: object) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    example = '[{"name": "pull_number", "type": "integer"}]'
    if not isinstance(items, list) or len(items) > MAX_PARAMETERS:
        check.add("parameters", "must be a list", f"at most {MAX_PARAMETERS} parameters", example)
        return found
    for i, item in enumerate(items):
        at = f"parameters[{i}]."
        if not isinstance(item, dict):
            check.add(f"parameters[{i}]", "must be an object", "name, type", example)
            continue
        check.unknown(item, _PARAM, at)
        name = check.text(
            item,
            "name",
            at,
            pattern=PARAM_NAME,
            expected="^[a-z][a-z0-9_]{0,63}$",
            example="pull_number",
        )
        kind = item.get("type")
        if kind not in TYPES:
            check.add(
                f"{at}type", f"{kind!r} is not a type", f"one of: {', '.join(TYPES)}", "integer"
            )
            continue
        if "required" in item and not isinstance(item["required"], bool):
            check.add(f"{at}required", "must be true or false", "a boolean", "false")
        if "default" in item and not _is(item["default"], kind):
            check.add(f"{at}default", f"does not have type {kind}", f"a {kind}", "1")
        if name is not None:
            if name in found:
                check.add(f"{at}name", f"duplicate parameter {name!r}", "unique names")
            found[name] = item
    return found


def _steps(check: _Checker, items: object, params: dict[str, dict[str, Any]]) -> None:
    example = '[{"id": "rerun", "action": "rerun_job", "with": {"workflow_run_id": 1}}]'
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_STEPS:
        check.add("steps", "must be a non-empty list", f"1 to {MAX_STEPS} steps", example)
        return
    ids: set[str] = set()
    for i, item in enumerate(items):
        at = f"steps[{i}]."
        if not isinstance(item, dict):
            check.add(f"steps[{i}]", "must be an object", "id, action, with", example)
            continue
        check.unknown(item, _STEP, at)
        step_id = check.text(
            item, "id", at, pattern=STEP_ID, expected="^[a-z][a-z0-9_-]{0,63}$", example="rerun"
        )
        if step_id is not None:
            if step_id in ids:
                check.add(f"{at}id", f"duplicate step id {step_id!r}", "unique ids")
            ids.add(step_id)
        action = item.get("action")
        if action not in STEP_ACTIONS:
            check.add(
                f"{at}action",
                f"{action!r} is not a step action",
                f"one of: {', '.join(sorted(STEP_ACTIONS))}",
                "rerun_job",
            )
        arguments = item.get("with", {})
        if not isinstance(arguments, dict):
            check.add(
                f"{at}with", "must be an object", "the action's parameters", '{"pull_number": 7}'
            )
            continue
        for name in _referenced(arguments):
            if name not in params:
                check.add(
                    f"{at}with",
                    f"uses {{{{ params.{name} }}}}, which is not declared",
                    "a name from parameters",
                    "{{ params.pull_number }}",
                )
        if action == HTTP_CALL:
            _http_call(check, arguments, f"{at}with.")
        elif action == NOTIFY:
            _notify(check, arguments, f"{at}with.")


def _http_call(check: _Checker, arguments: dict[str, Any], at: str) -> None:
    if str(arguments.get("method", "POST")).upper() not in HTTP_METHODS:
        check.add(
            f"{at}method", "is not an HTTP method", f"one of: {', '.join(HTTP_METHODS)}", "POST"
        )
    url = arguments.get("url")
    if not isinstance(url, str) or not re.match(r"https?://[^\s]+$", url):
        check.add(
            f"{at}url",
            "must be an http(s) URL",
            "http:// or https://",
            "https://deploy.example.com/hooks/restart",
        )


def _notify(check: _Checker, arguments: dict[str, Any], at: str) -> None:
    check.unknown(arguments, _NOTIFY, at)
    message = arguments.get("message")
    if not isinstance(message, str) or not 1 <= len(message.strip()) <= MAX_MESSAGE:
        check.add(
            f"{at}message",
            "is required",
            f"1 to {MAX_MESSAGE} characters; {{{{ params.NAME }}}} is replaced",
            "Restarted {{ params.service }}",
        )
    if "escalate" in arguments and not isinstance(arguments["escalate"], bool):
        check.add(f"{at}escalate", "must be true or false", "a boolean", "true")


def _referenced(value: object) -> list[str]:
    if isinstance(value, str):
        return TEMPLATE.findall(value)
    if isinstance(value, dict):
        return [n for v in value.values() for n in _referenced(v)]
    if isinstance(value, list):
        return [n for v in value for n in _referenced(v)]
    return []


def bind_parameters(manifest: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters: every required one given, each of its declared type."""
    check = _Checker()
    declared = {p["name"]: p for p in manifest.get("parameters", [])}
    check.unknown(given, set(declared), "parameters.")
    bound: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            if not _is(given[name], spec["type"]):
                check.add(
                    f"parameters.{name}",
                    f"must be of type {spec['type']}",
                    f"a {spec['type']}",
                    "7" if spec["type"] == "integer" else '"main"',
                )
            bound[name] = given[name]
        elif "default" in spec:
            bound[name] = spec["default"]
        elif spec.get("required", True):
            check.add(f"parameters.{name}", "is required", f"a {spec['type']}")
    if check.problems:
        raise ValidationFailed(
            "; ".join(f"{p.field}: {p.message}" for p in check.problems),
            code="runbook_parameters_invalid",
            errors=[p.as_error() for p in check.problems],
        )
    return bound


def render(value: Any, params: dict[str, Any]) -> Any:
    """Replace `{{ params.NAME }}`: a whole-string reference keeps the parameter's type."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())
        if whole:
            return params.get(whole[1])
        return TEMPLATE.sub(lambda m: str(params.get(m[1], "")), value)
    if isinstance(value, dict):
        return {k: render(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, params) for v in value]
    return value
