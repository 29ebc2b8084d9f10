"""Structured logging: JSON lines through structlog, with secrets redacted before output."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(
    r"(secret|token|password|passwd|authorization|api[_-]?key|cookie|signature|credential)",
    re.IGNORECASE,
)
_SECRET_VALUES = re.compile(
    r"(drg_[A-Za-z0-9_\-]{16,}|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}|"
    r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)"
)
# C0 and C1 controls and the Unicode line and paragraph separators: anything a reader of the
# output might take for the end of a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# structlog's own bookkeeping for records from the standard library; it never reaches the output.
_STRUCTLOG_META = frozenset({"_record", "_from_structlog"})


# Texts already found clean (method names, paths, event names repeat on every line), and each
# field name's cleaned form and whether it names a secret: the regular expressions ran on
# every field of every line before. Only clean texts are kept, so no secret stays in memory;
# each cache is emptied when full.
_CLEAN: dict[str, None] = {}
_FIELDS: dict[str, tuple[str, bool]] = {}
_CACHE_LIMIT = 4096
_CACHED_LENGTH = 256


def _clean(text: str) -> str:
    # ASCII letters and digits alone hold no control and none of the secret shapes above
    # (each needs a `_`, a `.` or a space): hex ids and most words pass here.
    if (text.isascii() and text.isalnum()) or text in _CLEAN:
        return text
    cleaned = _CONTROL.sub(" ", _SECRET_VALUES.sub(REDACTED, text))
    if cleaned == text and len(text) <= _CACHED_LENGTH:
        if len(_CLEAN) >= _CACHE_LIMIT:
            _CLEAN.clear()
        _CLEAN[text] = None
    return cleaned


def _field(key: str) -> tuple[str, bool]:
    found = _FIELDS.get(key)
    if found is None:
        found = (_clean(key), bool(_SECRET_KEYS.search(key)))
        if found[0] == key and len(key) <= _CACHED_LENGTH:
            if len(_FIELDS) >= _CACHE_LIMIT:
                _FIELDS.clear()
            _FIELDS[key] = found
    return found


def _json_line(event: Any, **options: Any) -> str:
    """One JSON object, rendered by orjson (several times faster than the standard library's
    encoder, and every request logs a line); what orjson cannot render (an integer past 64
    bits) falls back to the standard library."""
    try:
        return orjson.dumps(event, default=options.get("default")).decode()
    except TypeError:
        return json.dumps(event, **options)


# The types most fields hold, tried by identity first: a union isinstance costs more.
_PLAIN = frozenset({int, float, bool, type(None)})


def _scrub(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return _clean(value)
    if kind in _PLAIN or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {
            _clean(str(k)): REDACTED if _SECRET_KEYS.search(str(k)) else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    # Anything else is rendered as its text, so that text is what gets cleaned: an exception
    # or object whose str() carries a token would otherwise reach the output untouched.
    return _clean(value if isinstance(value, str) else str(value))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Drop values of secret-looking fields and mask key- or token-shaped strings anywhere."""
    for key in list(event_dict):
        if key in _STRUCTLOG_META:
            continue
        value = event_dict.pop(key)
        name, secret = _field(key)
        event_dict[name] = REDACTED if secret else _scrub(value)
    return event_dict


_stamped_second = -1
_stamped_prefix = ""


def _utc_now_iso() -> str:
    """Now in UTC as ISO 8601 with microseconds and `Z` (as `datetime.isoformat` writes it, so
    no fraction when it is zero), the date and time of day formatted once per second: every
    request logs a line, and building a datetime for it cost more than the rest of its stamp."""
    global _stamped_second, _stamped_prefix  # noqa: PLW0603 - a one-entry cache
    now = time.time()
    second = int(now)
    micro = int((now - second) * 1_000_000)
    if second != _stamped_second:
        _stamped_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamped_second = second
    return f"{_stamped_prefix}.{micro:06d}Z" if micro else f"{_stamped_prefix}Z"


def add_timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict["timestamp"] = _utc_now_iso()
    return event_dict


class JsonLines:
    """Dragon's own events in the json format, from the merged context to the rendered line in
    one pass: the level, any exception's text, the redaction, the timestamp, then orjson. It
    writes what the separate processors (`redact_secrets` and the others, which the standard
    library's records still go through) would, field for field and in the same order, with a
    fraction of the calls: every request logs an access line."""

    def __init__(self, render: Any) -> None:
        self._render = render

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        event_dict = structlog.processors.add_log_level(logger, method, event_dict)
        if "exc_info" in event_dict:
            event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
        line: dict[str, Any] = {}
        for key, value in event_dict.items():
            if key in _STRUCTLOG_META:
                line[key] = value
                continue
            name, secret = _FIELDS.get(key) or _field(key)
            line[name] = REDACTED if secret else _scrub(value)
        line["timestamp"] = _utc_now_iso()
        return self._render(logger, method, line)


def configure_logging(
    *, level: str = "info", fmt: str = "json", cache_loggers: bool = True
) -> None:
    """`cache_loggers=False` is for tests that log onto a stream which closes when they end:
    a logger cached on first use would keep writing to it afterwards."""
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False,
            # Rich tracebacks print local variables, which can hold secrets.
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        redact_secrets,
        # After the redaction: Dragon's own clock reading needs none (the key still comes last).
        add_timestamp,
    ]
    own: list[Any] = (
        [structlog.contextvars.merge_contextvars, JsonLines(renderer)]
        if fmt == "json"
        else [*shared, renderer]
    )
    structlog.configure(
        processors=own,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache_loggers,
    )
    # Route the standard library's records (uvicorn, sqlalchemy) through the same redaction.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The access middleware logs each request with its correlation id; uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs each request's full URL at INFO, and notification channel URLs carry secrets
    # (Teams and webhook URLs); their failures are logged by Dragon without the URL.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
