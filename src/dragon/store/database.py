"""Engines and sessions for SQLite (embedded) and PostgreSQL (production).

SQLite allows one writer at a time, so write transactions start with BEGIN IMMEDIATE on a
dedicated single-connection engine: writers queue in the pool instead of failing with
"database is locked", and readers keep their own connections (WAL lets them run alongside).

Every read transaction sees one snapshot of the store: SQLite's WAL gives each reader one, and
on PostgreSQL readers run at REPEATABLE READ (under READ COMMITTED each statement would see
whatever committed just before it, so the audit chain's tip and its events could disagree).
A read that is one statement (a listing page) needs no transaction for that: on PostgreSQL it
runs in autocommit, without the BEGIN and ROLLBACK round trips (`sessions(snapshot=False)`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from dragon.domain.errors import Unavailable
from dragon.store.query_metrics import instrument


@dataclass
class Database:
    url: str
    writer: AsyncEngine
    reader: AsyncEngine
    # For reads of one statement; the reader when the store has nothing cheaper.
    statement_reader: AsyncEngine | None = None
    # Times (and logs when slow) a statement sent to the writer's driver past the engine,
    # as the engine's own statements are.
    record_statement: Callable[[str, float], None] = lambda _statement, _seconds: None

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader.sync_engine.pool is not self.writer.sync_engine.pool:
            await self.reader.dispose()

    def sessions(self, *, write: bool, snapshot: bool = True) -> async_sessionmaker[Any]:
        engine = self.writer if write else self.reader
        if not write and not snapshot and self.statement_reader is not None:
            engine = self.statement_reader
        return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _json_text(value: object) -> str:
    """JSON columns' text, by orjson: the standard library's encoder was a few per cent of a
    worker's CPU (every signal, incident, decision, audit event and notification has JSON
    columns). Keys that are not strings are written as text, as `json.dumps` writes them."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# The same for every engine: values read back are the same whichever wrote them.
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _prepare_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed (so acknowledged) delivery survives a power loss, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
        # SQLite's own lower() folds ASCII only, so searching "Ärger" would not even find
        # "Ärger"; Python's folding matches what PostgreSQL does under a UTF-8 locale.
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# A PostgreSQL connection back in the pool for less than this is used again without a ping.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: AsyncEngine, *, idle_seconds: float) -> None:
    """pool_pre_ping for connections that sat idle in the pool: a connection that worked a
    moment ago is handed out as it is. Under load connections go back to work within
    milliseconds, and a round trip before every transaction was a large part of what a
    small one costs (an inbox batch of one delivery, a worker's pass). A connection broken
    while idle (a restarted PostgreSQL, a proxy's timeout) is still replaced before use;
    one broken in the last second fails its statement, and SQLAlchemy then invalidates it
    and every connection opened before it (the caller answers 503 or its pass retries)."""
    dialect = engine.sync_engine.dialect
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # new, or back to work at once
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool invalidates this connection and checks out another.
            raise sa_exc.DisconnectionError("the connection did not answer a ping") from exc


# pglz, PostgreSQL's default for compressing large values, costs the server about 90 µs of
# CPU more than lz4 for each 10 KB delivery body (and the API processes share the cores with
# it); lz4 compresses almost as well. The statement does nothing on a server built without
# lz4 (or older than 14, where the setting does not exist): pglz stays there.
_LZ4_WHERE_AVAILABLE = (
    "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings "
    "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)


def _prepare_postgres(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(_LZ4_WHERE_AVAILABLE)
        cursor.close()
        # Committed: the rollback the pool issues when the connection first returns would
        # take a setting made in an open transaction with it.
        dbapi_connection.commit()


def ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def connect(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    pool_timeout: float = 2.0,
    slow_query_ms: float = 250.0,
) -> Database:
    """`pool_timeout` bounds the wait for a free connection, after which the request gets a
    503 (`database_pool_exhausted`) rather than hanging. SQLite's single writer connection is
    the exception: writers queue for it by design (see docs/decisions/0002), up to 30 s."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        ensure_sqlite_directory(url)
        writer = create_async_engine(
            url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=30, **_JSON
        )
        reader = create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout, **_JSON
        )
        _prepare_sqlite(writer, immediate=True)
        _prepare_sqlite(reader, immediate=False)
        record_statement = instrument(writer, slow_query_ms=slow_query_ms)
        instrument(reader, slow_query_ms=slow_query_ms)
        return Database(url=url, writer=writer, reader=reader, record_statement=record_statement)
    # No pre-ping on every checkout: SQLAlchemy's asyncpg ping is a transaction of its own
    # (BEGIN, ";", ROLLBACK), three round trips, 0.5 ms of client CPU and 1.2 ms of a 3 ms
    # incident page. Only a connection idle in the pool for a second is pinged (below). One the
    # server dropped in the last second (a restart, a failover) fails its first statement:
    # that request gets 503 with Retry-After, and the pool discards every connection opened
    # before the failure, so the next checkout connects afresh.
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        **_JSON,
    )
    _ping_when_idle(engine, idle_seconds=PING_AFTER_IDLE_SECONDS)
    _prepare_postgres(engine)
    record_statement = instrument(engine, slow_query_ms=slow_query_ms)
    # The same pool: a connection's isolation level is set as it is checked out for reading and
    # restored when it goes back.
    reader = engine.execution_options(isolation_level="REPEATABLE READ")
    statement_reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    return Database(
        url=url,
        writer=engine,
        reader=reader,
        statement_reader=statement_reader,
        record_statement=record_statement,
    )


def unavailable_cause(exc: BaseException | None) -> bool:
    """Whether `exc` means the database cannot be reached (down, refusing, timing out, pool
    exhausted) rather than a problem with the statement itself."""
    if isinstance(exc, OperationalError | TimeoutError | OSError | sa_exc.TimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # SQLSTATE class 08 (connection exception) and 57P (the server shutting down, crashed or
    # still starting up: "the database system is starting up") mean "not reachable right now".
    state = getattr(exc.orig, "sqlstate", None)
    starting_or_gone = isinstance(state, str) and state.startswith(("08", "57P"))
    return bool(exc.connection_invalidated) or starting_or_gone


def pool_exhausted_cause(exc: BaseException | None) -> bool:
    """Whether `exc` is the pool's wait for a free connection running out."""
    return isinstance(exc, sa_exc.TimeoutError)


def pool_exhausted() -> Unavailable:
    return Unavailable(
        "every database connection is in use; retry shortly", code="database_pool_exhausted"
    )


def unavailable() -> Unavailable:
    return Unavailable("the database is unreachable; retry shortly", code="database_unavailable")
