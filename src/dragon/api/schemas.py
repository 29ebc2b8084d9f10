"""Request and response bodies. Requests forbid unknown fields; responses are explicit."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from dragon.domain.entities import ApiKey, AuditEvent, Incident, Principal
from dragon.domain.enums import (
    DecisionStatus,
    IncidentStatus,
    PrincipalKind,
    RiskLevel,
    Role,
    Severity,
)
from dragon.domain.git_refs import EXAMPLE as BRANCH_EXAMPLE
from dragon.domain.git_refs import branch_problem

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _one_line(value: str) -> str:
    # NUL cannot be stored in PostgreSQL text, and control characters in a title only serve
    # to mislead a terminal or a log reader.
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _printable_text(value: str) -> str:
    if _CONTROL_BUT_LINES.search(value):
        raise ValueError("control characters other than tab and line breaks are not allowed")
    return value


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=10_000),
    AfterValidator(_printable_text),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(_one_line),
]
# A title that may be empty (an alias's optional summary, which becomes the title).
OptionalTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=300),
    AfterValidator(_one_line),
]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# Where a signal or an incident comes from (`github`, `api`, a tool's name): a Name of at most
# 32 characters, as wide as the store keeps it.
Source = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
Repo = Annotated[
    str,
    StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){1,4}$"),
]


_BRANCH_CHARS = re.compile(r"[A-Za-z0-9._/+@-]+")


def _git_branch(value: str) -> str:
    problem = branch_problem(value)
    if problem is None and not _BRANCH_CHARS.fullmatch(value):
        problem = "may only contain letters, digits and . _ / + @ -"
    if problem is not None:
        raise ValueError(f"not a git branch name: it {problem}; for example {BRANCH_EXAMPLE}")
    return value


# git's own rules (domain.git_refs): a leading '-', '..', '@{', '.lock', spaces, control
# characters and ~^:?*[\ are refused, on every route that takes a branch.
Branch = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        description="a git branch name: no leading '-', no '..', '@{', '.lock', spaces, "
        "control characters or ~^:?*[\\",
        examples=["main", "release/2.4"],
    ),
    AfterValidator(_git_branch),
]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{7,64}$")]
# No space and no control character: NUL cannot be stored in PostgreSQL text at all.
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s\x00-\x1f\x7f]{1,2040}$")]
Justification = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
    AfterValidator(_printable_text),
]


# Why an admin did something (the actions switch): one short printable text, kept in the audit.
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=500),
    AfterValidator(_printable_text),
]
# A runbook version as its manifests give it (a semantic version), looked up as text.
RunbookVersion = Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9A-Za-z.+-]+$")]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


# What an event names and labels itself with: shown on one line in the console and the CLI.
EventName = Annotated[str, StringConstraints(max_length=200), AfterValidator(_one_line)]
LabelValue = Annotated[str, StringConstraints(max_length=256), AfterValidator(_one_line)]
# A CI log keeps its colour codes and line breaks; only NUL, which PostgreSQL cannot store in
# text, is refused (else the event would be accepted, then fail processing until dead).
LogExcerpt = Annotated[str, StringConstraints(max_length=65_536), AfterValidator(_no_nul)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentCreate(Request):
    title: Title
    severity: Severity = Severity.SEV3
    source: Source = "api"
    description: Text = ""
    repo: Repo | None = None
    branch: Branch | None = None
    commit_sha: Sha | None = None
    environment: Name | None = None
    url: Url | None = None
    labels: dict[
        Name, Annotated[str, StringConstraints(max_length=256), AfterValidator(_one_line)]
    ] = Field(default_factory=dict, max_length=50)


class IncidentResolve(Request):
    note: Text = ""


class RiskFactorIn(Request):
    name: Name
    weight: int = Field(ge=-100, le=100)
    detail: Annotated[str, StringConstraints(max_length=500)] = ""


class RiskIn(Request):
    factors: list[RiskFactorIn] = Field(default_factory=list, max_length=20)


class DecisionCreate(Request):
    action: Name
    title: Title
    incident_id: Name | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    rationale: Text = ""
    impact: Text = ""
    risk: RiskIn = Field(default_factory=RiskIn)
    confidence: float | None = Field(None, ge=0, le=1)
    repo: Repo | None = None
    branch: Branch | None = None
    environment: Name | None = None
    source: Source | None = None

    @field_validator("params")
    @classmethod
    def _small_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 50:
            raise ValueError("at most 50 parameters")
        return value


class LegacyDecisionCreate(DecisionCreate):
    """The original `POST /api/decisions`: the same fields, with the title optional."""

    title: Title | None = None  # type: ignore[assignment]


class VerdictIn(Request):
    justification: Justification


class LegacyApproval(Request):
    """The original `POST /api/approvals`. `approver` is accepted for old clients and ignored:
    the approver is always the authenticated principal."""

    decision_id: Name
    approved: bool
    justification: Justification
    incident_id: Name | None = None
    approver: Annotated[str, StringConstraints(max_length=128)] | None = None


class KeyCreate(Request):
    name: Name
    role: Role
    email: (
        Annotated[
            str,
            StringConstraints(
                max_length=320, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
            ),
        ]
        | None
    ) = None


class PolicySource(Request):
    source: Annotated[str, StringConstraints(min_length=1, max_length=256 * 1024)]


# ---- responses -------------------------------------------------------------------------------


R = TypeVar("R", bound="Response")


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def trusted(cls: type[R], source: object, **overrides: Any) -> R:
        """Build from an entity loaded from Dragon's own store, without validating it again:
        the store's column types already guarantee the field types, and listings build many."""
        values = {name: getattr(source, name) for name in cls.model_fields if name not in overrides}
        # pydantic's plugin types model_construct as the declaring class, not the subclass.
        return cast(R, cls.model_construct(**values, **overrides))

    @classmethod
    def trusted_values(cls, source: object) -> dict[str, Any]:
        """The fields `trusted` would take from a stored entity, as plain values for orjson
        (api.responses.json_page_response), for a model whose fields are all plain values.

        Read from the entity's own attribute dict, where a loaded row keeps its columns: the
        mapper's attribute descriptors cost more than the rest of the serialisation together,
        at a thousand reads a page. An attribute the dict lacks (not loaded) is read the
        ordinary way."""
        loaded = vars(source)
        return {
            name: loaded[name] if name in loaded else getattr(source, name)
            for name in cls.model_fields
        }


class IncidentOut(Response):
    id: str
    title: str
    description: str
    severity: Severity
    status: IncidentStatus
    source: str
    repo: str | None
    branch: str | None
    commit_sha: str | None
    environment: str | None
    url: str | None
    fingerprint: str | None
    labels: dict[str, str]
    signal_count: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None

    @classmethod
    def of(cls, incident: Incident) -> IncidentOut:
        return cls.trusted(incident)


class IncidentPage(Response):
    items: list[IncidentOut]
    next_cursor: str | None


class RiskFactorOut(Response):
    name: str
    weight: int
    detail: str


class RiskOut(Response):
    score: int
    level: RiskLevel
    factors: list[RiskFactorOut]


class ProposerOut(Response):
    id: str
    name: str
    kind: PrincipalKind


class PolicyRef(Response):
    version: str | None
    rule: str | None
    reason: str
    approvals_required: int
    approver_roles: list[str]


class ApprovalOut(Response):
    id: str
    principal_id: str
    principal_name: str
    verdict: str
    justification: str
    via: str
    created_at: datetime


class DecisionOut(Response):
    id: str
    incident_id: str | None
    title: str
    action: str
    params: dict[str, Any]
    rationale: str
    impact: str
    risk: RiskOut
    confidence: float | None
    proposer: ProposerOut
    provenance: dict[str, Any]
    repo: str | None
    branch: str | None
    environment: str | None
    source: str | None
    status: DecisionStatus
    policy: PolicyRef
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    approvals: list[ApprovalOut] | None = None


class DecisionPage(Response):
    items: list[DecisionOut]
    next_cursor: str | None


class AuditEventOut(Response):
    seq: int
    occurred_at: datetime
    actor_id: str
    actor_name: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    correlation_id: str | None
    client_address: str | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls.trusted(event)


class AuditPage(Response):
    items: list[AuditEventOut]
    next_cursor: str | None


class ChainOut(Response):
    status: str
    checked: int
    first_broken_seq: int | None
    reason: str | None


class PrincipalOut(Response):
    id: str
    name: str
    role: Role
    kind: PrincipalKind
    email: str | None

    @classmethod
    def of(cls, principal: Principal) -> PrincipalOut:
        return cls.model_validate(principal)


class KeyOut(Response):
    id: str
    name: str
    prefix: str
    role: Role | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey, principal: Principal | None) -> KeyOut:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            role=principal.role if principal else None,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class IssuedKeyOut(KeyOut):
    key: str = Field(description="the secret; shown only in this response")


class PolicyRuleOut(Response):
    id: str
    effect: str
    description: str
    approvals: int
    roles: list[str]


class PolicyOut(Response):
    version: str
    name: str
    source: str
    rules: list[PolicyRuleOut]
    activated_at: datetime | None
    activated_by: str | None


class PolicyVersionOut(Response):
    id: str
    version: str
    name: str
    active: bool
    created_at: datetime
    created_by: str
