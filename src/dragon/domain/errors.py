"""Every failure Dragon reports has a type, a stable code and a message.

    DragonError                 code, message, details; `kind` says how callers should treat it
    ├── Malformed               input cannot even be read, e.g. broken JSON (kind: malformed)
    ├── ValidationFailed        input is well-formed but wrong (kind: invalid)
    ├── Unauthenticated         no or bad credentials (kind: unauthenticated)
    ├── Forbidden               known principal, not allowed (kind: forbidden)
    ├── NotFound                the target does not exist (kind: not_found)
    ├── Conflict                the target's state forbids the operation (kind: conflict)
    │   └── InvalidTransition   a state machine refused a transition
    ├── PolicyInvalid           a policy document did not validate (kind: invalid)
    ├── RateLimited             too many requests in the window; retry later (kind: rate_limited)
    └── Unavailable             a dependency is down; retry later (kind: unavailable)
        └── CircuitOpen         (domain/breaker.py) the dependency's breaker is open

The codes are listed in docs/errors.md; the API maps `kind` to an HTTP status.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    MALFORMED = "malformed"
    INVALID = "invalid"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


class DragonError(Exception):
    kind: ErrorKind = ErrorKind.INVALID
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details


class Malformed(DragonError):
    kind = ErrorKind.MALFORMED
    default_code = "malformed"


class ValidationFailed(DragonError):
    kind = ErrorKind.INVALID
    default_code = "validation_failed"


class Unauthenticated(DragonError):
    kind = ErrorKind.UNAUTHENTICATED
    default_code = "unauthenticated"


class Forbidden(DragonError):
    kind = ErrorKind.FORBIDDEN
    default_code = "forbidden"


class NotFound(DragonError):
    kind = ErrorKind.NOT_FOUND
    default_code = "not_found"


class Conflict(DragonError):
    kind = ErrorKind.CONFLICT
    default_code = "conflict"


class InvalidTransition(Conflict):
    default_code = "invalid_transition"


class RateLimited(DragonError):
    kind = ErrorKind.RATE_LIMITED
    default_code = "rate_limited"


class Unavailable(DragonError):
    kind = ErrorKind.UNAVAILABLE
    default_code = "unavailable"


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with a policy document, located for the person fixing it."""

    message: str
    line: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        at = f"{self.path}: " if self.path else ""
        return f"{where}{at}{self.message}"


class PolicyInvalid(DragonError):
    kind = ErrorKind.INVALID
    default_code = "policy_invalid"

    def __init__(self, problems: list[PolicyProblem]) -> None:
        super().__init__(
            f"policy has {len(problems)} problem(s): " + "; ".join(str(p) for p in problems),
            problems=[{"line": p.line, "path": p.path, "message": p.message} for p in problems],
        )
        self.problems = problems
