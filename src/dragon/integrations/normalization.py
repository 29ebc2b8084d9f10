"""What every vendor adapter shares when it normalizes a payload: reading fields defensively,
parsing the vendors' timestamps, bounding keys and texts, and building CI signal drafts.

A field that is needed but missing or of the wrong type raises
ValidationFailed(code="payload_invalid") naming the field by its dotted path; an optional field
that is absent reads as None.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dragon.domain.enums import Severity
from dragon.domain.errors import ValidationFailed
from dragon.domain.signals import SignalDraft, SignalKind, ci_fingerprint

MAX_TITLE = 300
MAX_LOG_EXCERPT = 4_000
MAX_DELIVERY_KEY = 200

_UTC_SUFFIX = re.compile(r"\s*(?:UTC|Z)$")
_SPACED_OFFSET = re.compile(r"\s+([+-]\d{2}:?\d{2})$")


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}",
        code="payload_invalid",
        field=field,
        errors=[
            {"location": "body", "field": field, "message": message, "type": "payload_invalid"}
        ],
    )


def parse_time(value: str, *, field: str) -> datetime:
    """ISO 8601 / RFC 3339 in the variants vendors send: `2024-11-22T09:00:00Z`,
    nanosecond fractions (Alertmanager), `2016-08-12 15:23:28 UTC` and `... +0200` (GitLab).
    A time without an offset is taken as UTC."""
    text = _UTC_SUFFIX.sub("+00:00", value.strip())
    text = _SPACED_OFFSET.sub(r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(field, f"{value!r} is not a timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class Fields:
    """A read-only view of one JSON object in a payload, which knows its own dotted path."""

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self._data = data
        self.path = path

    @classmethod
    def root(cls, payload: Any) -> Fields:
        if not isinstance(payload, Mapping):
            raise invalid("$", "the payload must be a JSON object")
        return cls(payload)

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        return self._data.get(key)

    def _present(self, key: str, *, required: bool, what: str) -> Any:
        value = self._data.get(key)
        if value is None and required:
            raise invalid(self.where(key), f"{what} is required")
        return value

    def obj(self, key: str, *, required: bool = False) -> Fields | None:
        value = self._present(key, required=required, what="an object")
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise invalid(self.where(key), "must be an object")
        return Fields(value, self.where(key))

    def need_obj(self, key: str) -> Fields:
        found = self.obj(key, required=True)
        assert found is not None
        return found

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self._present(key, required=required, what="a string")
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(self.where(key), "must be a string")
        if required and not value.strip():
            raise invalid(self.where(key), "must not be empty")
        return _storable(value)

    def need_text(self, key: str) -> str:
        found = self.text(key, required=True)
        assert found is not None
        return found

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._present(key, required=required, what="an integer")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(self.where(key), "must be an integer")
        return value

    def ident(self, key: str) -> str:
        """A required identifier, sent as a number or a non-empty string."""
        value = self._present(key, required=True, what="an identifier")
        if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
            raise invalid(self.where(key), "must be a number or a non-empty string")
        return str(value)

    def optional_ident(self, key: str) -> str | None:
        return self.ident(key) if self._data.get(key) is not None else None

    def flag(self, key: str) -> bool:
        value = self._data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise invalid(self.where(key), "must be true or false")
        return value

    def time(self, key: str, *, required: bool = False) -> datetime | None:
        value = self.text(key, required=required)
        return parse_time(value, field=self.where(key)) if value else None

    def need_time(self, key: str) -> datetime:
        found = self.time(key, required=True)
        assert found is not None
        return found

    def array(self, key: str, *, required: bool = False) -> list[Any]:
        value = self._present(key, required=required, what="an array")
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(self.where(key), "must be an array")
        return value

    def string_map(self, key: str, *, required: bool = False) -> dict[str, str]:
        """An object of string values, such as Prometheus labels or annotations."""
        found = self.obj(key, required=required)
        if found is None:
            return {}
        result: dict[str, str] = {}
        for name, value in found._data.items():
            if not isinstance(value, str):
                raise invalid(found.where(str(name)), "must be a string")
            result[_storable(str(name))] = _storable(value)
        return result


def _storable(text: str) -> str:
    """A vendor's text with NUL (a CI log's binary output, say) shown as U+FFFD: PostgreSQL
    cannot store NUL in text, and refusing the field would lose the event it belongs to."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def labels(**values: str | None) -> dict[str, str]:
    """Signal labels from the values that are present."""
    return {name: value for name, value in values.items() if value}


def bounded_key(key: str) -> str:
    """A delivery or signal key of at most 200 characters; a longer one keeps its start and
    ends in its own SHA-256, so it stays unique and stable."""
    if len(key) <= MAX_DELIVERY_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_DELIVERY_KEY - len(digest) - 1]}#{digest}"


def title_text(text: str) -> str:
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"


# The longest texts a signal keeps (its incident's and the store's columns are as wide): a
# vendor's longer branch or label is cut here, never a reason for its delivery to fail
# processing (PostgreSQL refuses what does not fit) until it is dead.
_WIDTHS = {
    "source": 32,
    "repo": 200,
    "branch": 255,
    "commit_sha": 64,
    "pipeline": 200,
    "job": 200,
    "url": 2048,
    "environment": 64,
}


def fitted(draft: SignalDraft) -> SignalDraft:
    """`draft` with each text cut to the width a signal keeps; its fingerprint, made from the
    whole texts, stays as it was."""
    cut = {
        name: value[:width]
        for name, width in _WIDTHS.items()
        if (value := getattr(draft, name)) and len(value) > width
    }
    return dataclasses.replace(draft, **cut) if cut else draft


def log_tail(text: str | None) -> str:
    """The end of a log, where the error usually is."""
    if not text:
        return ""
    return text[-MAX_LOG_EXCERPT:]


def ci_severity(*, branch: str | None, default_branch: str | None, default: Severity) -> Severity:
    """Breaking the default branch is SEV2 (or the configured default if that is worse)."""
    if branch and default_branch and branch == default_branch:
        return min(Severity.SEV2, default, key=lambda s: s.value)
    return default


def ci_title(
    kind: SignalKind, *, pipeline: str | None, job: str | None, repo: str | None, branch: str | None
) -> str:
    verb = "CI failed" if kind is SignalKind.CI_FAILURE else "CI recovered"
    what = " / ".join(part for part in (pipeline, job) if part) or "pipeline"
    where = f" on {repo}" if repo else ""
    if branch:
        where = f"{where}@{branch}" if repo else f" on {branch}"
    return title_text(f"{verb}: {what}{where}")


def ci_signal(
    *,
    source: str,
    kind: SignalKind,
    signal_key: str,
    occurred_at: datetime,
    severity: Severity,
    repo: str | None,
    branch: str | None,
    commit_sha: str | None,
    pipeline: str | None,
    job: str | None,
    url: str | None,
    labels: dict[str, str],
    environment: str | None = None,
    log_excerpt: str = "",
) -> SignalDraft:
    """A CI failure or recovery. Both get the same fingerprint, so a recovery finds the
    incident its failure opened. Text read around `Fields.text` (a check run's output, a
    step's name, identifiers) is made storable here."""
    repo, branch, commit_sha, pipeline, job, url, environment = (
        _storable(v) if v else v
        for v in (repo, branch, commit_sha, pipeline, job, url, environment)
    )
    signal_key, log_excerpt = _storable(signal_key), _storable(log_excerpt)
    labels = {_storable(k): _storable(v) for k, v in labels.items()}
    draft = SignalDraft(
        source=source,
        kind=kind,
        signal_key=bounded_key(signal_key),
        fingerprint=ci_fingerprint(
            provider=source, repo=repo, pipeline=pipeline, job=job, branch=branch
        ),
        title=ci_title(kind, pipeline=pipeline, job=job, repo=repo, branch=branch),
        severity=severity,
        occurred_at=occurred_at,
        repo=repo,
        branch=branch,
        commit_sha=commit_sha,
        pipeline=pipeline,
        job=job,
        url=url,
        environment=environment,
        labels=labels,
        log_excerpt=log_tail(log_excerpt),
    )
    return fitted(draft)
