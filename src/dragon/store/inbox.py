"""Repositories for the inbox (deliveries), signals and incident correlation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from dragon.domain.entities import Delivery, Incident, IncidentLink, Signal
from dragon.domain.enums import DeliveryStatus, IncidentStatus
from dragon.domain.ports import DeliveryQuery, NewDelivery
from dragon.store.database import Database, unavailable, unavailable_cause
from dragon.store.repositories import SessionRepository, keyset_page
from dragon.store.tables import deliveries, incident_links, incidents, signals


class SqlDeliveryRepository(SessionRepository):
    def __init__(self, session: AsyncSession, *, jobs: JobQueue | None = None) -> None:
        super().__init__(session)
        self._jobs = jobs

    async def schedule(self, delivery_ids: Sequence[str]) -> None:
        if self._jobs is not None and delivery_ids:
            await self._jobs.defer(await self.session.connection(), list(delivery_ids))

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


class SqlSignalRepository(SessionRepository):
    async def known(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        if not keys:
            return set()
        found = await self.session.execute(
            sa.select(signals.c.source, signals.c.signal_key).where(
                sa.tuple_(signals.c.source, signals.c.signal_key).in_(list(keys))
            )
        )
        return {(str(source), str(key)) for source, key in found}

    async def add(self, signal: Signal) -> None:
        self.session.add(signal)

    async def latest_for(
        self, incident_ids: Collection[str], *, limit: int
    ) -> dict[str, list[Signal]]:
        entity: Any = Signal
        ranked = (
            sa.select(
                signals.c.id,
                sa.func.row_number()
                .over(partition_by=signals.c.incident_id, order_by=signals.c.id.desc())
                .label("rank"),
            )
            .where(signals.c.incident_id.in_(list(incident_ids)))
            .subquery()
        )
        stmt = (
            sa.select(Signal)
            .join(ranked, ranked.c.id == entity.id)
            .where(ranked.c.rank <= limit)
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


def _newest(group: Any, where: Any, *, keep: int) -> Any:
    """The ids (`ranked_id`) of the newest `keep` incidents of each `group` value among those
    `where` selects."""
    ranked = (
        sa.select(
            incidents.c.id.label("ranked_id"),
            sa.func.row_number()
            .over(partition_by=group, order_by=incidents.c.id.desc())
            .label("rank"),
        )
        .where(where)
        .subquery()
    )
    return sa.select(ranked.c.ranked_id).where(ranked.c.rank <= keep).subquery()


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
                incidents.c.fingerprint,
                sa.and_(
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
            # One more than incidents_with_commit returns: it leaves one out.
            newest = _newest(
                incidents.c.commit_sha, incidents.c.commit_sha.in_(commit_shas), keep=21
            )
            stmt = (
                sa.select(Incident)
                .join(newest, newest.c.ranked_id == entity.id)
                .order_by(entity.id.desc())
            )
            for incident in await self.session.scalars(stmt):
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
        # On PostgreSQL the writer keeps its connection while batches follow one another:
        # each checkout pings the server first (three round trips, as many as the batch
        # itself), which under load is spent on a connection that served a batch a moment
        # ago. It goes back to the pool whenever nothing waits, and after any failure, so the
        # next batch checks out (and pings) a fresh one. SQLite's one writer connection is
        # shared with every other write, so it is taken per batch there.
        held: AsyncConnection | None = None
        try:
            while True:
                if not self._pending:
                    if held is not None:
                        await held.close()
                        held = None
                    self._arrived.clear()
                    await self._arrived.wait()
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    if self._postgres and held is None:
                        held = await self._engine.connect()
                    outcomes = await self._store([delivery for delivery, _ in batch], held)
                except Exception as exc:  # noqa: BLE001 - every waiter gets the failure
                    if held is not None:
                        await _close_quietly(held)
                        held = None
                    failure: Exception = unavailable() if unavailable_cause(exc) else exc
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(failure)
                    continue
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if not done.done():
                        done.set_result(outcome)
        finally:
            if held is not None:
                await _close_quietly(held)

    async def _store(
        self, batch: list[NewDelivery], held: AsyncConnection | None
    ) -> list[Delivery | None]:
        if held is None:
            async with self._engine.begin() as conn:
                return await self._store_in(conn, batch)
        async with held.begin():
            return await self._store_in(held, batch)

    async def _store_in(
        self, conn: AsyncConnection, batch: list[NewDelivery]
    ) -> list[Delivery | None]:
        sql = self._sql or _InsertSql(self._engine.dialect, jobs=self._jobs)
        self._sql = sql
        # Rows in key order on PostgreSQL: batches from several API processes that share keys
        # (a redelivered burst) take the unique index's locks in the same order, so none
        # waits on another in a cycle (a deadlock would fail the whole batch).
        rows = sorted(batch, key=_unique_key) if self._postgres else batch
        inserted = await conn.exec_driver_sql(*sql.statement(rows))
        # On PostgreSQL the statement also deferred the batch's job (its row reads NULL).
        new_ids = {i for i in inserted.scalars().all() if i is not None}
        if self._jobs is not None and not sql.defers:
            pending = [d.id for d in batch if d.id in new_ids and not d.ignored]
            if pending:
                await self._jobs.defer(conn, pending)
        existing: dict[tuple[str, str], Delivery] = {}
        missing = [d for d in batch if d.id not in new_ids]
        if missing:
            found = await conn.execute(
                sa.select(deliveries).where(
                    sa.tuple_(deliveries.c.source, deliveries.c.delivery_key).in_(
                        [(d.source, d.delivery_key) for d in missing]
                    )
                )
            )
            for row in found.mappings():
                existing[(row["source"], row["delivery_key"])] = Delivery(**row)
        return [None if d.id in new_ids else existing[(d.source, d.delivery_key)] for d in batch]


async def _close_quietly(conn: AsyncConnection) -> None:
    """Give a held connection back; one the failure broke is discarded by the pool itself."""
    with contextlib.suppress(Exception):
        await conn.close()


@dataclass(frozen=True)
class JobQueue:
    """Where the inbox enqueues processing on PostgreSQL: one procrastinate job per stored
    batch, deferred by procrastinate's own SQL function inside the batch's transaction, so a
    delivery is committed if and only if its job is (docs/decisions/0011)."""

    queue: str
    task: str

    def deferral_of(self, ids: str, *, first_parameter: int) -> tuple[str, tuple[str, str]]:
        """A SELECT that defers one job for the delivery ids in the `id` column of `ids` (a
        table or CTE name from Dragon's own code), and none when it has no rows; with its
        parameters, numbered from `first_parameter`."""
        queue, task = first_parameter, first_parameter + 1
        return (
            f"SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(${queue}::varchar, ${task}::varchar, "  # noqa: S608  # nosec B608
            "0, NULL::text, NULL::text, jsonb_build_object('delivery_ids', jsonb_agg(id ORDER BY "
            f"id)), NULL::timestamptz)::procrastinate_job_to_defer_v1]) FROM {ids} "
            "HAVING count(*) > 0",
            (self.queue, self.task),
        )

    async def defer(self, conn: AsyncConnection, delivery_ids: list[str]) -> None:
        await conn.exec_driver_sql(
            "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW($1::varchar, $2::varchar, 0, "
            "NULL::text, NULL::text, $3::text::jsonb, NULL::timestamptz)"
            "::procrastinate_job_to_defer_v1])",
            (self.queue, self.task, orjson.dumps({"delivery_ids": delivery_ids}).decode()),
        )


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
        self._suffix = " ON CONFLICT (source, delivery_key) DO NOTHING RETURNING id"
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
            self._extra: tuple[Any, ...] = ()
            if jobs is not None:
                # The batch's job in the same statement: one round trip less per batch.
                count = len(deliveries.columns)
                deferral, job_parameters = jobs.deferral_of("pending", first_parameter=count + 2)
                # The insert's text ends in its RETURNING list, which the CTE extends.
                self._postgres_sql = (  # nosec B608 - only Dragon's own names and $n
                    f"WITH inserted AS ({self._postgres_sql}, status), "  # noqa: S608
                    f"pending AS (SELECT id FROM inserted WHERE status = ${count + 1}), "
                    f"deferred AS ({deferral}) "
                    "SELECT id FROM inserted UNION ALL SELECT NULL FROM deferred"
                )
                self._extra = (self._pending_status, *job_parameters)
        self.defers = self._postgres and jobs is not None
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
            return self._postgres_sql, columns + self._extra
        sql = self._prefix + "VALUES " + ", ".join(self._row for _ in rows) + self._suffix
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
