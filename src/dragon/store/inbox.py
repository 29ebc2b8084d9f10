"""Repositories for the inbox (deliveries), signals and incident correlation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dragon.domain.entities import Delivery, Incident, IncidentLink, Signal
from dragon.domain.enums import DeliveryStatus, IncidentStatus
from dragon.domain.errors import ValidationFailed
from dragon.domain.ports import DeliveryQuery, NewDelivery
from dragon.store.database import Database, unavailable, unavailable_cause
from dragon.store.repositories import SessionRepository, keyset_page
from dragon.store.tables import deliveries, incident_links, incidents, signals

log = structlog.get_logger("dragon.store")


class SqlDeliveryRepository(SessionRepository):
    def __init__(self, session: AsyncSession, *, jobs: JobQueue | None = None) -> None:
        super().__init__(session)
        self._jobs = jobs

    async def schedule(self, delivery_ids: Sequence[str]) -> None:
        if self._jobs is not None and delivery_ids:
            await self._jobs.defer(await self.session.connection(), list(delivery_ids))

    async def await_scheduled(self) -> None:
        if self._jobs is not None:
            await self._jobs.await_deferring(await self.session.connection())

    async def get(self, delivery_id: str, *, for_update: bool = False) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id, with_for_update=for_update)

    async def claim_due(self, *, now: datetime, limit: int) -> list[Delivery]:
        entity: Any = Delivery
        stmt = (
            sa.select(Delivery)
            .where(entity.status == DeliveryStatus.PENDING, entity.next_attempt_at <= now)
            .order_by(entity.next_attempt_at, entity.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def claim_many(self, delivery_ids: Sequence[str], *, now: datetime) -> list[Delivery]:
        entity: Any = Delivery
        stmt = (
            sa.select(Delivery)
            .where(
                entity.id.in_(list(delivery_ids)),
                entity.status == DeliveryStatus.PENDING,
                entity.next_attempt_at <= now,
            )
            .order_by(entity.id)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(stmt))

    async def claim(self, delivery_id: str) -> Delivery | None:
        entity: Any = Delivery
        stmt = (
            sa.select(Delivery)
            .where(entity.id == delivery_id, entity.status == DeliveryStatus.PENDING)
            .with_for_update(skip_locked=True)
        )
        return await self.session.scalar(stmt)

    async def find(self, query: DeliveryQuery) -> tuple[list[Delivery], str | None]:
        entity: Any = Delivery
        stmt = sa.select(Delivery)
        if query.status:
            stmt = stmt.where(entity.status == query.status)
        if query.source:
            stmt = stmt.where(entity.source == query.source)
        return await keyset_page(self.session, stmt, entity.id, query.page)


# Each pair asks the unique (source, signal key) index for both columns, one lookup per pair:
# the LATERAL subquery with its LIMIT cannot be turned into a join, so no statistics can make
# the planner read the table whole. Written as a row-wise IN, pairs that share a source were
# planned by PostgreSQL as `source = ...` with the keys left to a filter whenever the table
# was not analyzed yet (a young store, or its first busy hours), and as an EXISTS, as a hash
# join over every signal: either way every signal of the source was read for each batch.
# Arrays also make it one statement whatever the batch's size.
_KNOWN_ON_POSTGRES = sa.text(
    "SELECT k.source, k.signal_key"
    " FROM unnest(CAST(:sources AS varchar[]), CAST(:keys AS varchar[])) AS k(source, signal_key)"
    " CROSS JOIN LATERAL (SELECT 1 FROM signals AS s"
    " WHERE s.source = k.source AND s.signal_key = k.signal_key LIMIT 1) AS stored"
)


def known_signals(keys: Collection[tuple[str, str]], *, dialect: str) -> sa.Executable:
    """The statement that finds which of the (source, signal key) pairs are stored."""
    if dialect == "postgresql":
        pairs = sorted(keys)
        return _KNOWN_ON_POSTGRES.bindparams(
            sources=[source for source, _ in pairs], keys=[key for _, key in pairs]
        )
    return sa.select(signals.c.source, signals.c.signal_key).where(
        sa.tuple_(signals.c.source, signals.c.signal_key).in_(list(keys))
    )


class SqlSignalRepository(SessionRepository):
    async def known(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        if not keys:
            return set()
        dialect = self.session.get_bind().dialect.name
        found = await self.session.execute(known_signals(keys, dialect=dialect))
        return {(str(source), str(key)) for source, key in found}

    async def add(self, signal: Signal) -> None:
        self.session.add(signal)

    async def latest_for(
        self, incident_ids: Collection[str], *, limit: int
    ) -> dict[str, list[Signal]]:
        entity: Any = Signal
        newest = _newest(
            signals.c.id,
            group=signals.c.incident_id,
            where=signals.c.incident_id.in_(list(incident_ids)),
            keep=limit,
        )
        stmt = (
            sa.select(Signal)
            .join(newest, newest.c.ranked_id == entity.id)
            .order_by(entity.id.desc())
        )
        found: dict[str, list[Signal]] = {i: [] for i in incident_ids}
        for signal in await self.session.scalars(stmt):
            found[str(signal.incident_id)].append(signal)
        return found

    async def for_incident(self, incident_id: str, *, limit: int) -> list[Signal]:
        entity: Any = Signal
        stmt = (
            sa.select(Signal)
            .where(entity.incident_id == incident_id)
            .order_by(entity.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(stmt))


# The subquery's ORDER BY fixes the order the locks are taken in: the aggregate reads its
# rows as sorted, and no plan reorders an ordered subquery scanned once.
_LOCK_IN_ORDER = sa.text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered"
)


def _newest(id_column: Any, *, group: Any, where: Any, keep: int) -> Any:
    """The ids (`ranked_id`) of the newest `keep` rows of each `group` value among those
    `where` selects, in one window pass: ids are time-ordered, so the highest is the newest."""
    ranked = (
        sa.select(
            id_column.label("ranked_id"),
            sa.func.row_number().over(partition_by=group, order_by=id_column.desc()).label("rank"),
        )
        .where(where)
        .subquery()
    )
    return sa.select(ranked.c.ranked_id).where(ranked.c.rank <= keep).subquery()


# One more than incidents_with_commit returns: it leaves one out.
_PER_COMMIT = 21

# The newest incidents of each commit, one index probe per commit (LATERAL with its LIMIT, as
# for the signals above). As `commit_sha IN (...)` with a pass's hundred commits, PostgreSQL
# planned a table not analyzed yet (every young store) as a seq scan of all incidents, joined
# by hash to a second one: 21 ms per pass at 7,000 incidents, growing with every delivery.
_BY_COMMIT_COLUMNS = ", ".join(f"n.{column.name}" for column in incidents.c)
_BY_COMMIT_ON_POSTGRES = (
    f"SELECT {_BY_COMMIT_COLUMNS}"  # noqa: S608  # nosec B608 - the table's own column names
    " FROM unnest(CAST(:shas AS varchar[])) AS k(sha)"
    " CROSS JOIN LATERAL (SELECT * FROM incidents AS i WHERE i.commit_sha = k.sha"
    f" ORDER BY i.id DESC LIMIT {_PER_COMMIT}) AS n ORDER BY n.id DESC"
)


def incidents_by_commit(commit_shas: Collection[str], *, dialect: str) -> sa.Executable:
    """The statement that reads the newest incidents of each commit, newest first."""
    entity: Any = Incident
    if dialect == "postgresql":
        textual = sa.text(_BY_COMMIT_ON_POSTGRES).bindparams(shas=sorted(set(commit_shas)))
        return sa.select(Incident).from_statement(textual.columns(*incidents.c))
    newest = _newest(
        incidents.c.id,
        group=incidents.c.commit_sha,
        where=incidents.c.commit_sha.in_(list(commit_shas)),
        keep=_PER_COMMIT,
    )
    return (
        sa.select(Incident).join(newest, newest.c.ranked_id == entity.id).order_by(entity.id.desc())
    )


class SqlCorrelationRepository(SessionRepository):
    async def lock_fingerprints(self, fingerprints: Collection[str]) -> None:
        # SQLite serialises writers already; PostgreSQL takes transaction-scoped advisory
        # locks, in ascending key order, in one round trip (a batch has many fingerprints).
        if not fingerprints or self.session.get_bind().dialect.name != "postgresql":
            return
        keys = sorted(
            {
                int.from_bytes(hashlib.sha256(f.encode()).digest()[:8], "big", signed=True)
                for f in fingerprints
            }
        )
        await self.session.execute(_LOCK_IN_ORDER, {"keys": keys})

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._open: dict[str, Incident | None] = {}
        self._resolved: dict[str, Incident | None] = {}
        self._by_commit: dict[str, list[Incident]] = {}

    async def prefetch(
        self, *, fingerprints: Collection[str], commit_shas: Collection[str]
    ) -> None:
        entity: Any = Incident
        fingerprints, commit_shas = list(fingerprints), list(commit_shas)
        if fingerprints:
            stmt = (
                sa.select(Incident)
                .where(
                    entity.fingerprint.in_(fingerprints),
                    entity.status != IncidentStatus.RESOLVED,
                )
                .with_for_update()
            )
            self._open = dict.fromkeys(fingerprints)
            self._open.update({str(i.fingerprint): i for i in await self.session.scalars(stmt)})
            self._resolved = dict.fromkeys(fingerprints)
            newest = _newest(
                incidents.c.id,
                group=incidents.c.fingerprint,
                where=sa.and_(
                    incidents.c.fingerprint.in_(fingerprints),
                    incidents.c.status == IncidentStatus.RESOLVED.value,
                ),
                keep=1,
            )
            for incident in await self.session.scalars(
                sa.select(Incident).join(newest, newest.c.ranked_id == entity.id)
            ):
                self._resolved[str(incident.fingerprint)] = incident
        if commit_shas:
            self._by_commit = {sha: [] for sha in commit_shas}
            for incident in await self.session.scalars(
                incidents_by_commit(commit_shas, dialect=self.session.get_bind().dialect.name)
            ):
                self._by_commit[str(incident.commit_sha)].append(incident)

    async def open_incident(self, fingerprint: str) -> Incident | None:
        if fingerprint in self._open:
            return self._open.pop(fingerprint)
        await self.session.flush()  # incidents this batch added are found, too
        entity: Any = Incident
        stmt = (
            sa.select(Incident)
            .where(entity.fingerprint == fingerprint, entity.status != IncidentStatus.RESOLVED)
            .with_for_update()
        )
        return await self.session.scalar(stmt)

    async def last_resolved(self, fingerprint: str) -> Incident | None:
        if fingerprint in self._resolved:
            return self._resolved.pop(fingerprint)
        await self.session.flush()
        entity: Any = Incident
        stmt = (
            sa.select(Incident)
            .where(entity.fingerprint == fingerprint, entity.status == IncidentStatus.RESOLVED)
            .order_by(entity.id.desc())
            .limit(1)
        )
        return await self.session.scalar(stmt)

    async def incidents_with_commit(self, commit_sha: str, *, exclude: str) -> list[Incident]:
        if commit_sha in self._by_commit:
            return [i for i in self._by_commit.pop(commit_sha) if i.id != exclude][:20]
        await self.session.flush()
        entity: Any = Incident
        stmt = (
            sa.select(Incident)
            .where(entity.commit_sha == commit_sha, entity.id != exclude)
            .order_by(entity.id.desc())
            .limit(20)
        )
        return list(await self.session.scalars(stmt))

    async def link(self, link: IncidentLink) -> None:
        await self.session.flush()  # the incidents it joins are added unflushed
        await self.session.execute(
            self._insert(incident_links)
            .values(
                incident_id=link.incident_id,
                linked_id=link.linked_id,
                reason=link.reason,
                created_at=link.created_at,
            )
            .on_conflict_do_nothing()
        )

    async def links_of(self, incident_id: str) -> list[IncidentLink]:
        entity: Any = IncidentLink
        stmt = sa.select(IncidentLink).where(entity.incident_id == incident_id)
        return list(await self.session.scalars(stmt))


class GroupCommitInbox:
    """Stores accepted deliveries with group commit.

    Each accept waits for its delivery to be committed before Dragon answers (the inbox's
    durability guarantee). Rather than one transaction each, concurrent accepts queue here and
    one writer task stores a whole batch with one insert statement and one commit, then wakes
    every waiter: under load, one disk sync serves many deliveries. The insert goes to the
    driver as plain SQL with SQLAlchemy's own column encoders (the rows read back exactly as
    the ORM's), since per-row ORM or statement-building work is what bounds the accept rate.
    """

    def __init__(
        self, database: Database, *, max_batch: int = 500, jobs: JobQueue | None = None
    ) -> None:
        self._engine = database.writer
        self._jobs = jobs
        self._max_batch = max_batch
        self._pending: list[tuple[NewDelivery, asyncio.Future[Delivery | None]]] = []
        self._arrived = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._postgres = database.dialect == "postgresql"
        self._record_statement = database.record_statement
        self._sql: _InsertSql | None = None

    async def add(self, delivery: NewDelivery) -> Delivery | None:
        """Store `delivery` unless its (source, key) exists; returns the existing one if so.
        Returns only once the outcome is committed."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        done: asyncio.Future[Delivery | None] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, done))
        self._arrived.set()
        return await done

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write_batches(self) -> None:
        while True:
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._answer(batch)

    async def _answer(
        self, batch: list[tuple[NewDelivery, asyncio.Future[Delivery | None]]]
    ) -> None:
        """Stores the batch and answers each of its waiters once its outcome is committed.

        A batch the store refuses for a row's values (a data or integrity error: a value
        wider than its column, a missing one; never an unreachable store) goes again in
        halves, each its own statement and commit, down to the rows refused alone: their
        waiters get `delivery_refused`, the others are stored and answered as ever. The
        statement is all or nothing, so a refused batch left nothing behind. A batch that
        is stored costs nothing more."""
        try:
            outcomes = await self._store([delivery for delivery, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
            refused = _refused_values(exc)
            if refused and len(batch) > 1:
                middle = len(batch) // 2
                await self._answer(batch[:middle])
                await self._answer(batch[middle:])
                return
            failure: Exception = exc
            if unavailable_cause(exc):
                failure = unavailable()
            elif refused:
                failure = _refusal(exc, batch[0][0])
            for _, done in batch:
                if not done.done():
                    done.set_exception(failure)
            return
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if not done.done():
                done.set_result(outcome)

    async def _store(self, batch: list[NewDelivery]) -> list[Delivery | None]:
        sql = self._sql or _InsertSql(self._engine.dialect, jobs=self._jobs)
        self._sql = sql
        try:
            return await self._store_through_driver(sql, batch)
        except Exception:  # noqa: BLE001 - the engine's attempt says what failed
            # The driver's own errors say less than the engine's: SQLAlchemy's types tell an
            # unreachable store (503) from a bad statement, and it discards the pool's
            # connections when one was broken. So the batch goes again through the engine,
            # which answers for it; a row the first attempt did store is found with its own
            # id, so it still counts as new (and its job was deferred with it).
            return await self._store_through_engine(sql, batch)

    async def _store_through_driver(
        self, sql: _InsertSql, batch: list[NewDelivery]
    ) -> list[Delivery | None]:
        """The batch as one statement, its own transaction, sent to the writer connection's
        driver: committed when it returns, as before the 202.

        On PostgreSQL the statement also defers the batch's job: one round trip instead of
        four (BEGIN, insert, defer, COMMIT). SQLAlchemy's statement machinery around it cost
        the API process more per batch than the round trip (most of what storing a delivery
        cost at a low rate, a delivery a batch); asyncpg keeps the plan prepared.

        On SQLite the statement runs outside BEGIN, so SQLite commits it as it completes
        (durably: synchronous=FULL), with the write lock taken at its start as BEGIN
        IMMEDIATE would; one call to aiosqlite's thread. Through the engine, BEGIN, the
        insert, its RETURNING rows and COMMIT took a dozen, each a hand-off between that
        thread and the busy event loop (every returned row a GIL round trip). The count of
        rows stored says whether every delivery was new, as it nearly always is.

        Only when some were not are the batch's keys read back, to tell new from existing:
        rows already there were committed before the insert returned (on PostgreSQL a
        conflict with an uncommitted row waits for it), so the read sees them."""
        text, params = self._statement(sql, batch)
        async with self._engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            started = time.perf_counter()
            try:
                if self._postgres:
                    if driver.is_in_transaction():
                        raise RuntimeError("the writer connection is in a transaction")
                    stored = len(await driver.fetch(text, *params))
                else:
                    if driver.in_transaction:
                        raise RuntimeError("the writer connection is in a transaction")
                    cursor = await driver.execute(text, params)
                    stored = cursor.rowcount
                    await cursor.close()
                    if driver.in_transaction:
                        raise RuntimeError("the batch's insert did not commit")
            except Exception:
                if self._postgres:
                    await conn.invalidate()  # not back to the pool in whatever state it is
                raise
            self._record_statement(text, time.perf_counter() - started)
            if stored == len(batch):
                return [None] * len(batch)
            reader = (
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                if self._postgres
                else conn
            )
            return _outcomes(batch, await _existing(reader, batch))

    def _statement(self, sql: _InsertSql, batch: list[NewDelivery]) -> tuple[str, tuple[Any, ...]]:
        if self._postgres:
            # Rows in key order: batches from several API processes that share keys (a
            # redelivered burst) take the unique index's locks in the same order, so none
            # waits on another in a cycle (a deadlock would fail the whole batch).
            return sql.statement(sorted(batch, key=_unique_key))
        return sql.statement(batch)

    async def _store_through_engine(
        self, sql: _InsertSql, batch: list[NewDelivery]
    ) -> list[Delivery | None]:
        """The same statement through SQLAlchemy (PostgreSQL: its own transaction; SQLite:
        BEGIN IMMEDIATE, then the read of the batch's keys, then COMMIT)."""
        if self._postgres:
            async with self._engine.connect() as conn:
                own = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await own.exec_driver_sql(*self._statement(sql, batch))
                return _outcomes(batch, await _existing(own, batch))
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql(*self._statement(sql, batch))
            return _outcomes(batch, await _existing(conn, batch))


def _refused_values(exc: Exception) -> bool:
    """Whether the store refused the statement for the values of its rows (some row's):
    SQLSTATE class 22 (data exception) or 23 (integrity constraint violation). SQLAlchemy's
    asyncpg adapter raises a plain DBAPIError for class 22, so the state is read too."""
    if unavailable_cause(exc):
        return False
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, sa_exc.DBAPIError) and isinstance(state, str) and state[:2] in _REFUSED


# SQLSTATE classes that name a row's values as the statement's problem.
_REFUSED = ("22", "23")


def _refusal(exc: Exception, delivery: NewDelivery) -> ValidationFailed:
    """The refused delivery's error, logged without its body, headers or the database's
    message (which may quote the row)."""
    cause = getattr(exc, "orig", None)
    log.warning(
        "delivery_refused_by_store",
        delivery_id=delivery.id,
        source=delivery.source,
        error_type=type(cause or exc).__name__,
        sqlstate=getattr(cause, "sqlstate", None),
    )
    return ValidationFailed(
        "the database refused to store this delivery (a value is missing or too large for "
        "the inbox); it was not stored, and sending it again unchanged fails the same way",
        code="delivery_refused",
    )


def _outcomes(
    batch: list[NewDelivery], stored: Mapping[tuple[str, str], Delivery]
) -> list[Delivery | None]:
    """None for each delivery stored under its own id, else the delivery stored before it."""
    return [None if (found := stored[_unique_key(d)]).id == d.id else found for d in batch]


async def _existing(
    conn: AsyncConnection, missing: list[NewDelivery]
) -> dict[tuple[str, str], Delivery]:
    """The stored deliveries that share their source and key with these."""
    if not missing:
        return {}
    found = await conn.execute(
        sa.select(deliveries).where(
            sa.tuple_(deliveries.c.source, deliveries.c.delivery_key).in_(
                [(d.source, d.delivery_key) for d in missing]
            )
        )
    )
    return {(row["source"], row["delivery_key"]): Delivery(**row) for row in found.mappings()}


# The advisory lock (two-key form: apart from the one-key fingerprint and run locks) that
# orders a delivery job after every transaction that left its deliveries to that job.
_DEFERRING_LOCK = (0x44524147, 22)


def _waiting_job_insert(queue: str, task: str, args: str) -> str:
    """procrastinate's job insert (as procrastinate_defer_jobs_v1 makes it; its triggers
    record the job and notify the workers only when a job is really inserted), from a CTE
    `deferring` that took the deferring lock, and nothing when a job waits already: the
    queueing lock is the task's name. The arguments are SQL expressions of Dragon's own."""
    return (
        "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args) "  # noqa: S608  # nosec B608
        f"SELECT {queue}::varchar, {task}::varchar, {task}::varchar, {args} FROM deferring "
        "ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING"
    )


@dataclass(frozen=True)
class JobQueue:
    """Where the inbox enqueues processing on PostgreSQL: a procrastinate job inserted in
    the transaction that stores the deliveries, so a delivery is committed if and only if a
    job that will see it is (docs/decisions/0011, 0022).

    At most one job waits at a time: the job's queueing lock is its task's name, and a
    transaction that finds one waiting adds none (`ON CONFLICT DO NOTHING` on procrastinate's
    unique index of waiting jobs' queueing locks). The waiting job processes whatever is due
    when it runs, so it covers them, provided it runs after they commit: each deferring
    transaction holds `_DEFERRING_LOCK` shared from its insert to its commit, and a job
    takes it exclusively (`await_deferring`) before it reads the inbox. A transaction that
    found the job waiting had taken the lock before the job was fetched, so the job waits
    for it; one that comes after the fetch finds no waiting job and inserts the next."""

    queue: str
    task: str

    async def defer(self, conn: AsyncConnection, delivery_ids: list[str]) -> None:
        # The lock first (the insert reads from it), then the job.
        await conn.exec_driver_sql(
            "WITH deferring AS (SELECT pg_advisory_xact_lock_shared($1::int, $2::int)) "
            + _waiting_job_insert("$3", "$4", "$5::text::jsonb"),
            (
                *_DEFERRING_LOCK,
                self.queue,
                self.task,
                orjson.dumps({"delivery_ids": delivery_ids}).decode(),
            ),
        )

    def deferring_insert(
        self, insert: str, *, first_param: int, pending: Any
    ) -> tuple[str, tuple[Any, ...]]:
        """`insert` (of deliveries, `RETURNING id, status`) and the deferral of the pending
        ones it stored, as one statement: the same lock and job insert as `defer`, taken
        only when a pending delivery was stored. Returns the text (selecting the stored
        ids) and the parameters to append, numbered from `first_param`."""
        lock_a, lock_b, queue, task, status = (f"${n}" for n in range(first_param, first_param + 5))
        pending_ids = (
            "jsonb_build_object('delivery_ids', "  # noqa: S608  # nosec B608
            f"(SELECT jsonb_agg(id) FROM stored WHERE status = {status}::varchar))"
        )
        # Every name in the text is ours; every value is bound.
        sql = (
            f"WITH stored AS ({insert}), "  # noqa: S608  # nosec B608
            f"deferring AS (SELECT pg_advisory_xact_lock_shared({lock_a}::int, {lock_b}::int) "
            f"FROM (SELECT 1 FROM stored WHERE status = {status}::varchar LIMIT 1) AS pending), "
            f"job AS ({_waiting_job_insert(queue, task, pending_ids)}) "
            "SELECT id FROM stored"
        )
        return sql, (*_DEFERRING_LOCK, self.queue, self.task, pending)

    @staticmethod
    async def await_deferring(conn: AsyncConnection) -> None:
        """Wait for every transaction still deferring onto a waiting job.

        The lock is taken and released in the one statement, inside the database: every
        accept that asks for it meanwhile waits behind it, so it must not stay held for a
        round trip to the worker (the result, then a COMMIT), whose process may run at a
        lower CPU priority than the API's (DRAGON_WORKER_NICE) and be descheduled."""
        try:
            await conn.exec_driver_sql(
                "WITH held AS MATERIALIZED (SELECT pg_advisory_lock($1::int, $2::int)) "
                "SELECT pg_advisory_unlock($1::int, $2::int) FROM held",
                _DEFERRING_LOCK,
            )
        except BaseException:
            # A statement cut between the two (a cancel) would leave the session's lock on a
            # pooled connection, and every accept waiting on it: closed, it is released.
            await conn.invalidate()
            raise


class _InsertSql:
    """One INSERT ... ON CONFLICT DO NOTHING RETURNING id for a batch of new deliveries.

    PostgreSQL gets one array per column through unnest, so the statement text (and its
    prepared plan) is the same for every batch size; SQLite gets a multi-row VALUES."""

    def __init__(self, dialect: Dialect, *, jobs: JobQueue | None = None) -> None:
        self._postgres = dialect.name == "postgresql"
        self._encode: dict[str, Callable[[Any], Any]] = {
            column.name: column.type.dialect_impl(dialect).bind_processor(dialect) or _as_is
            for column in deliveries.columns
        }
        if list(self._encode) != _ROW_ORDER:
            raise RuntimeError("the deliveries table's columns changed: update _InsertSql")
        self._pending_status = self._encode["status"](DeliveryStatus.PENDING)
        self._ignored_status = self._encode["status"](DeliveryStatus.IGNORED)
        self._no_attempts = self._encode["attempts"](0)
        self._no_error = self._encode["last_error"](None)
        self._not_processed = self._encode["processed_at"](None)
        self._no_result = self._encode["result"]({})
        names = ", ".join(column.name for column in deliveries.columns)
        self._prefix = f"INSERT INTO deliveries ({names}) "
        self._conflict = " ON CONFLICT (source, delivery_key) DO NOTHING"
        self._suffix = f"{self._conflict} RETURNING id"
        if self._postgres:
            arrays = ", ".join(
                f"${n}::{_PG_ARRAY_TYPES[column.name]}[]"
                for n, column in enumerate(deliveries.columns, start=1)
            )
            selected = ", ".join(
                f"{column.name}::json" if column.name in ("headers", "result") else column.name
                for column in deliveries.columns
            )
            # Only the table's own column names go into the text; every value is bound.
            self._postgres_sql = (
                f"{self._prefix}SELECT {selected} FROM unnest({arrays}) AS t({names})"  # noqa: S608  # nosec B608
                f"{self._suffix}"
            )
            self._job_params: tuple[Any, ...] = ()
            if jobs is not None:
                self._postgres_sql, self._job_params = jobs.deferring_insert(
                    f"{self._postgres_sql}, status",
                    first_param=len(deliveries.columns) + 1,
                    pending=self._pending_status,
                )
        self._row = "(" + ", ".join("?" for _ in deliveries.columns) + ")"

    def _encoded(self, delivery: NewDelivery) -> list[Any]:
        ignored = delivery.ignored
        encode = self._encode
        # One encoding of the arrival time serves the three time columns it fills; the
        # values every new delivery shares were encoded once, in __init__.
        received = encode["received_at"](delivery.received_at)
        return [
            encode["id"](delivery.id),
            encode["source"](delivery.source),
            encode["delivery_key"](delivery.delivery_key),
            encode["event_type"](delivery.event_type),
            encode["body"](delivery.body),
            _json_text(delivery.headers),
            self._ignored_status if ignored else self._pending_status,
            self._no_attempts,
            received,
            self._no_error,
            received,
            received if ignored else self._not_processed,
            encode["result"]({"ignored": ignored}) if ignored else self._no_result,
        ]

    def statement(self, batch: list[NewDelivery]) -> tuple[str, tuple[Any, ...]]:
        rows = [self._encoded(delivery) for delivery in batch]
        if self._postgres:
            columns = tuple(list(column) for column in zip(*rows, strict=True))
            return self._postgres_sql, columns + self._job_params
        # SQLite: no RETURNING (the count of rows stored says enough; see GroupCommitInbox).
        sql = self._prefix + "VALUES " + ", ".join(self._row for _ in rows) + self._conflict
        return sql, tuple(value for row in rows for value in row)


def _unique_key(delivery: NewDelivery) -> tuple[str, str]:
    return delivery.source, delivery.delivery_key


def _as_is(value: Any) -> Any:
    return value


def _json_text(headers: Mapping[str, str]) -> str:
    """A delivery's headers as JSON text, by orjson: the JSON type's encoder is the standard
    library's, several times slower, and every delivery has headers (the same values read
    back; only the spacing differs)."""
    return orjson.dumps(dict(headers)).decode()


# The columns in the order _InsertSql._encoded fills them.
_ROW_ORDER = [
    "id",
    "source",
    "delivery_key",
    "event_type",
    "body",
    "headers",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "received_at",
    "processed_at",
    "result",
]
# The PostgreSQL element type of each column's array parameter (json travels as text).
_PG_ARRAY_TYPES = {
    "id": "varchar",
    "source": "varchar",
    "delivery_key": "varchar",
    "event_type": "varchar",
    "body": "bytea",
    "headers": "text",
    "status": "varchar",
    "attempts": "int",
    "next_attempt_at": "timestamptz",
    "last_error": "text",
    "received_at": "timestamptz",
    "processed_at": "timestamptz",
    "result": "text",
}
