"""Specification of Dragon's logs: one JSON object per line on stderr, with secrets redacted and no
way for a logged value to forge a second line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragon.logs import REDACTED, configure_logging

API_KEY = "drg_" + "Zx9_Qw-3" * 5
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiJ9"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)
OPAQUE_BEARER = "Bearer s3cr3t.opaque-token_value"
SECRETS = (API_KEY, JWT, "s3cr3t.opaque-token_value", "hunter2-is-my-password")
_STDLIB_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


class CapturedLogs:
    """Logging configured onto the captured stderr of the running test.

    `start` is called from the test body: pytest swaps sys.stderr between a fixture's setup and
    the test, and configure_logging binds the stream it finds when called.
    """

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def start(self, fmt: str = "json") -> Any:
        configure_logging(level="debug", fmt=fmt, cache_loggers=False)
        self._capsys.readouterr()
        return structlog.get_logger("dragon.test")

    def lines(self) -> list[str]:
        return self._capsys.readouterr().err.splitlines()


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[CapturedLogs]:
    saved = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
        )
        for name in _STDLIB_LOGGERS
    }
    yield CapturedLogs(capsys)
    structlog.reset_defaults()
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    """Every line must be one JSON object."""
    return [json.loads(line) for line in lines]


def assert_no_secrets(lines: list[str]) -> None:
    for line in lines:
        for secret in SECRETS:
            assert secret not in line


# Redaction


def test_api_key_in_a_message_or_a_value_is_redacted(logs: CapturedLogs) -> None:
    logs.start().info(f"issued {API_KEY} to alice", note=f"key={API_KEY}")

    lines = logs.lines()

    assert_no_secrets(lines)
    (event,) = parsed(lines)
    assert event["event"] == f"issued {REDACTED} to alice"
    assert event["note"] == f"key={REDACTED}"


def test_bearer_tokens_and_jwt_shaped_strings_are_redacted(logs: CapturedLogs) -> None:
    log = logs.start()
    log.info("request", header=OPAQUE_BEARER, raw=f"token is {JWT} here", lower="bearer abcdefgh12")

    (event,) = parsed(logs.lines())

    assert event["header"] == REDACTED
    assert event["raw"] == f"token is {REDACTED} here"
    assert event["lower"] == REDACTED


@pytest.mark.parametrize(
    "field",
    [
        "secret",
        "secret_key",
        "jwt_secret",
        "token",
        "access_token",
        "password",
        "Authorization",
        "api_key",
        "X-API-Key",
        "cookie",
        "webhook_signature",
        "credentials",
    ],
)
def test_fields_named_like_secrets_are_redacted_whatever_they_hold(
    logs: CapturedLogs, field: str
) -> None:
    logs.start().info("configured", **{field: "plain-looking-value", "user": "alice"})

    (event,) = parsed(logs.lines())

    assert event[field] == REDACTED
    assert event["user"] == "alice"


def test_secret_fields_nested_in_dicts_and_lists_are_redacted(logs: CapturedLogs) -> None:
    logs.start().info(
        "webhook",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "Content-Type": "application/json"},
        attempts=[{"password": "hunter2-is-my-password", "n": 1}, f"retry with {API_KEY}"],
    )

    lines = logs.lines()

    assert_no_secrets(lines)
    (event,) = parsed(lines)
    assert event["headers"] == {"Authorization": REDACTED, "Content-Type": "application/json"}
    assert event["attempts"] == [{"password": REDACTED, "n": 1}, f"retry with {REDACTED}"]


def test_plain_values_keep_their_json_types(logs: CapturedLogs) -> None:
    logs.start().info("counted", count=3, ratio=0.5, ok=True, missing=None, tags=("a", "b"))

    (event,) = parsed(logs.lines())

    assert (event["count"], event["ratio"], event["ok"], event["missing"]) == (3, 0.5, True, None)
    assert event["tags"] == ["a", "b"]
    assert event["level"] == "info"
    assert event["timestamp"].endswith("Z")


def test_objects_whose_text_carries_a_secret_are_redacted(logs: CapturedLogs) -> None:
    logs.start().warning(
        "call_failed", error=ValueError(f"upstream refused {OPAQUE_BEARER}"), seen={API_KEY}
    )

    lines = logs.lines()

    assert_no_secrets(lines)
    (event,) = parsed(lines)
    assert event["error"] == f"upstream refused {REDACTED}"
    assert event["seen"] == [REDACTED]


def test_traceback_with_a_secret_is_redacted_and_stays_on_one_line(logs: CapturedLogs) -> None:
    log = logs.start()
    try:
        raise RuntimeError(f"could not use {API_KEY}")
    except RuntimeError:
        log.exception("failed")

    lines = logs.lines()

    assert_no_secrets(lines)
    (event,) = parsed(lines)
    assert "Traceback (most recent call last):" in event["exception"]
    assert f"RuntimeError: could not use {REDACTED}" in event["exception"]


def test_standard_library_records_go_through_the_same_redaction(logs: CapturedLogs) -> None:
    logs.start()
    logging.getLogger("uvicorn.error").warning("client sent %s\nsecond line", OPAQUE_BEARER)

    lines = logs.lines()

    assert_no_secrets(lines)
    (event,) = parsed(lines)
    assert event["event"] == f"client sent {REDACTED} second line"
    assert (event["logger"], event["level"]) == ("uvicorn.error", "warning")


# No forged lines


def test_newline_in_a_value_cannot_forge_a_second_log_line(logs: CapturedLogs) -> None:
    forged = '"}\n{"event": "admin_login", "level": "info", "user": "root"}\n'
    logs.start().info("comment_added", body=forged, **{"odd\nkey": 1})

    lines = logs.lines()

    (event,) = parsed(lines)
    assert event["event"] == "comment_added"
    assert "\n" not in event["body"]
    assert event["odd key"] == 1


@pytest.mark.parametrize(
    ("separator", "shown"),
    [
        ("\r", " "),
        ("\x00", " "),
        ("\x1b[2K", " [2K"),  # a terminal escape loses its ESC and so its power
        ("\x0b", " "),
        ("\x85", " "),
        ("\u2028", " "),
        ("\u2029", " "),
    ],
)
def test_control_characters_and_unicode_line_breaks_are_neutralised(
    logs: CapturedLogs, separator: str, shown: str
) -> None:
    logs.start().info(f"before{separator}after", value=f"a{separator}b")

    (event,) = parsed(logs.lines())

    assert event["event"] == f"before{shown}after"
    assert event["value"] == f"a{shown}b"


def test_console_format_also_writes_one_line_per_event(logs: CapturedLogs) -> None:
    logs.start(fmt="console").info("one\nevent", value="x\u2028y\x85z\rw", token=API_KEY)

    lines = logs.lines()

    assert len(lines) == 1
    assert API_KEY not in lines[0]
    assert "one event" in lines[0]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=st.text(max_size=40), value=st.text(max_size=40))
def test_any_text_logs_as_exactly_one_json_line(
    logs: CapturedLogs, message: str, value: str
) -> None:
    logs.start().info(message, value=value, key=API_KEY)

    lines = logs.lines()

    assert len(lines) == 1
    (event,) = parsed(lines)
    assert event["key"] == REDACTED
    assert API_KEY not in lines[0]


def test_an_access_line_carries_its_fields_then_the_context_level_and_utc_time(
    logs: CapturedLogs,
) -> None:
    log = logs.start()
    with structlog.contextvars.bound_contextvars(correlation_id="c0ffee"):
        log.info("request", method="POST", path="/webhooks/git\nhub", status=202, duration_ms=1.5)

    (line,) = logs.lines()

    event = json.loads(line)
    assert list(event) == [
        "method", "path", "status", "duration_ms", "event", "correlation_id", "level", "timestamp"
    ]  # fmt: skip
    assert event["path"] == "/webhooks/git hub"
    assert (event["status"], event["duration_ms"], event["level"]) == (202, 1.5, "info")
    stamped = datetime.fromisoformat(event["timestamp"])
    assert stamped.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamped) < timedelta(minutes=1)


def test_a_level_or_timestamp_given_as_a_field_is_replaced_where_it_stands(
    logs: CapturedLogs,
) -> None:
    logs.start().warning("odd", level="debug", timestamp="yesterday", after=1)

    (event,) = parsed(logs.lines())

    assert list(event) == ["level", "timestamp", "after", "event"]
    assert event["level"] == "warning"
    assert event["timestamp"] != "yesterday"
