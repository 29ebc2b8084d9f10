"""Query durations as a metric, and slow queries logged with their duration.

Statements are logged without their parameters: parameters carry what callers sent, secrets
(hashed API keys, webhook bodies) among them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

QUERY_SECONDS = Histogram(
    "dragon_db_query_duration_seconds",
    "Duration of one database statement",
    ["dialect"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
_STATEMENT_LOGGED = 500  # characters of a slow statement kept in its log line
log = structlog.get_logger("dragon.store")


def statement_recorder(dialect: str, *, slow_query_ms: float) -> Callable[[str, float], None]:
    """Records one statement's duration in the metric, and logs it when it took
    `slow_query_ms` or more: what `instrument` does for every statement an engine runs, for
    a statement sent to the driver directly (the SQLite inbox's batch insert)."""
    observe = QUERY_SECONDS.labels(dialect=dialect).observe
    threshold = slow_query_ms / 1000

    def record(statement: str, elapsed: float) -> None:
        observe(elapsed)
        if elapsed >= threshold:
            log.warning(
                "slow_query",
                duration_ms=round(elapsed * 1000, 2),
                threshold_ms=slow_query_ms,
                statement=" ".join(statement.split())[:_STATEMENT_LOGGED],
            )

    return record


def instrument(engine: AsyncEngine, *, slow_query_ms: float) -> Callable[[str, float], None]:
    """Time every statement the engine runs; log those over `slow_query_ms`. Returns the
    recorder, for statements sent past the engine to its driver."""
    record = statement_recorder(engine.dialect.name, slow_query_ms=slow_query_ms)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _started(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        context._dragon_started = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _finished(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        started = getattr(context, "_dragon_started", None)
        if started is None:
            return
        record(statement, time.perf_counter() - started)

    return record
