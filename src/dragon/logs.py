"""Structured logging: JSON lines through structlog, with secrets redacted before output."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

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


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", _SECRET_VALUES.sub(REDACTED, text))


def _scrub(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
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
        event_dict[_clean(key)] = REDACTED if _SECRET_KEYS.search(key) else _scrub(value)
    return event_dict


def configure_logging(
    *, level: str = "info", fmt: str = "json", cache_loggers: bool = True
) -> None:
    """`cache_loggers=False` is for tests that log onto a stream which closes when they end:
    a logger cached on first use would keep writing to it afterwards."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
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
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, renderer],
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
