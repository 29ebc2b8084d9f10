"""The worker's use case: turn stored deliveries into signals and incidents, at least once,
with idempotent effects (signals are unique per source and key), retries with backoff, and a
dead-letter state after the last attempt."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog

from dragon.domain.clock import Clock
from dragon.domain.entities import Delivery, Incident, Signal, TriageClaim
from dragon.domain.enums import DeliveryStatus
from dragon.domain.errors import DragonError
from dragon.domain.ids import new_id
from dragon.domain.ports import UnitOfWork, UnitOfWorkFactory, WebhookAdapter
from dragon.domain.signals import Normalized, NormalizeOptions
from dragon.services.correlation import correlate
from dragon.services.ingest import parse_json
from dragon.traces import CONSUMER, current_traceparent, span

log = structlog.get_logger("dragon.worker")
_MAX_BACKOFF = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s ... capped at five minutes."""
    return min(timedelta(seconds=2 ** max(0, attempts - 1)), _MAX_BACKOFF)


async def _prepare(uow: UnitOfWork, meanings: list[Normalized]) -> set[tuple[str, str]]:
    """Serialise correlation per fingerprint across workers, locking in sorted order so that
    two transactions never wait on each other's locks; then read, a few statements for the
    whole batch, what correlating it will ask: the signals stored already (returned), and
    the incidents of fingerprints and commits that occur once in the batch (one that occurs
    twice is asked of the store after the first one's changes)."""
    drafts = [draft for meaning in meanings for draft in meaning.signals]
    await uow.correlation.lock_fingerprints({draft.fingerprint for draft in drafts})
    known = await uow.signals.known({(d.source, d.signal_key[:300]) for d in drafts})
    fingerprints = Counter(d.fingerprint for d in drafts)
    commits = Counter(d.commit_sha for d in drafts if d.commit_sha)
    await uow.correlation.prefetch(
        fingerprints=[f for f, n in fingerprints.items() if n == 1],
        commit_shas=[c for c, n in commits.items() if n == 1],
    )
    return known


@dataclass(frozen=True, slots=True)
class Opened:
    """An incident a pass opened under its triage claim, with the pass's signals of it,
    newest first (all it has: no other transaction could see it before the pass committed)."""

    incident: Incident
    signals: tuple[Signal, ...]


@dataclass(frozen=True, slots=True)
class Settled:
    """What one processing pass did: how many deliveries it took, the incidents their
    signals went to (none known when the batch fell back to one delivery at a time), and
    those it opened claimed for triage (when the pass was given a claim)."""

    count: int
    incident_ids: tuple[str, ...] = ()
    opened: tuple[Opened, ...] = ()


class DeliveryProcessor:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        adapters: Mapping[str, WebhookAdapter],
        event_normalizer: Callable[..., Normalized],
        options: NormalizeOptions,
        clock: Clock,
        max_attempts: int = 5,
    ) -> None:
        self._uow = uow
        self._adapters = adapters
        self._normalize_event = event_normalizer
        self._options = options
        self._clock = clock
        self._max_attempts = max_attempts

    async def run_due(self, *, batch: int = 25, overdue: timedelta = timedelta(0)) -> int:
        """One pass over deliveries due at least `overdue` ago; returns how many this worker
        took (settled or rescheduled), so a caller can loop until nothing is left."""
        return (await self.settle_due(batch=batch, overdue=overdue)).count

    async def settle_due(
        self,
        *,
        batch: int = 25,
        overdue: timedelta = timedelta(0),
        triage: TriageClaim | None = None,
    ) -> Settled:
        """`run_due`, also saying which incidents the pass's signals went to, for a caller
        that triages them next: with `triage`, the incidents the pass opens are claimed for
        it in the pass's own transaction, and come back with their signals."""
        due = self._clock() - overdue
        return await self._settle(
            lambda uow: uow.deliveries.claim_due(now=due, limit=batch), triage=triage
        )

    async def await_scheduled(self) -> None:
        """Before a job engine's job reads the inbox: wait for the transactions that left
        their deliveries to it, so it sees them (docs/decisions/0022)."""
        async with self._uow() as uow:
            await uow.deliveries.await_scheduled()
            await uow.commit()

    async def run_batch(self, delivery_ids: Sequence[str]) -> int:
        """Process the named deliveries (a job engine's unit of work) that are still pending
        and due; ones settled meanwhile, held by another worker or not yet due are skipped,
        so running a job twice, or after a sweep got there first, changes nothing."""
        now = self._clock()
        settled = await self._settle(lambda uow: uow.deliveries.claim_many(delivery_ids, now=now))
        return settled.count

    async def _settle(
        self,
        claim: Callable[[UnitOfWork], Awaitable[list[Delivery]]],
        *,
        triage: TriageClaim | None = None,
    ) -> Settled:
        """Claim a batch (workers sharing a store skip each other's rows) and settle it in one
        transaction, so one commit and one audit-chain append serve them all. Fingerprint
        locks are taken up front in sorted order, so two workers' batches cannot deadlock.
        If anything fails, the pass is rolled back and each delivery is processed on its own,
        so a bad delivery cannot hold back the others."""
        claimed: list[str] = []
        opened: dict[str, tuple[Incident, list[Signal]]] = {}
        try:
            async with self._uow() as uow:
                deliveries = await claim(uow)
                claimed = [d.id for d in deliveries]
                meanings = [(d, self._meaning(d)) for d in deliveries]
                known = await _prepare(uow, [m for _, m in meanings])
                for delivery, meaning in meanings:
                    await self._apply(uow, delivery, meaning, known, triage=triage, opened=opened)
                await uow.commit()
        except Exception as exc:  # noqa: BLE001 - settled one by one below, each failure recorded
            log.warning(
                "delivery_batch_failed",
                error_type=type(exc).__name__,
                deliveries=claimed,
                fallback="one by one",
            )
            return Settled(count=sum([await self.process(delivery_id) for delivery_id in claimed]))
        incident_ids = (i for d in deliveries for i in d.result.get("incident_ids", ()))
        return Settled(
            count=len(claimed),
            incident_ids=tuple(dict.fromkeys(incident_ids)),
            opened=tuple(
                Opened(incident, tuple(sorted(of, key=lambda s: s.id, reverse=True)))
                for incident, of in opened.values()
            ),
        )

    async def process(self, delivery_id: str) -> bool:
        """Process one delivery; False if it was settled meanwhile or another worker has it."""
        try:
            async with self._uow() as uow:
                delivery = await uow.deliveries.claim(delivery_id)
                if delivery is None:
                    return False
                meaning = self._meaning(delivery)
                known = await _prepare(uow, [meaning])
                await self._apply(uow, delivery, meaning, known)
                await uow.commit()
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried later
            await self._record_failure(delivery_id, exc)
        return True

    def _meaning(self, delivery: Delivery) -> Normalized:
        payload = parse_json(delivery.body)
        if delivery.source == "api":
            return self._normalize_event(
                payload,
                key=delivery.delivery_key,
                options=self._options,
                received_at=delivery.received_at,
            )
        adapter = self._adapters[delivery.source]
        return adapter.normalize(headers=delivery.headers, payload=payload, options=self._options)

    async def _apply(
        self,
        uow: UnitOfWork,
        delivery: Delivery,
        meaning: Normalized,
        known: set[tuple[str, str]],
        *,
        triage: TriageClaim | None = None,
        opened: dict[str, tuple[Incident, list[Signal]]] | None = None,
    ) -> None:
        # A child of the request that accepted the delivery, whichever process that was.
        with span(
            "process delivery",
            parent=delivery.headers.get("traceparent"),
            kind=CONSUMER,
            attributes={"dragon.delivery_id": delivery.id, "dragon.source": delivery.source},
        ):
            await self._apply_traced(uow, delivery, meaning, known, triage=triage, opened=opened)

    async def _apply_traced(
        self,
        uow: UnitOfWork,
        delivery: Delivery,
        meaning: Normalized,
        known: set[tuple[str, str]],
        *,
        triage: TriageClaim | None,
        opened: dict[str, tuple[Incident, list[Signal]]] | None,
    ) -> None:
        """`known`: the (source, signal key) pairs stored already, this batch's included;
        `opened`: the incidents this batch opened under `triage`, and their signals."""
        now = self._clock()
        trace_context = current_traceparent()
        signal_ids: list[str] = []
        incident_ids: list[str] = []
        for draft in meaning.signals:
            signal = Signal(
                id=new_id("sig", now),
                delivery_id=delivery.id,
                source=draft.source,
                kind=draft.kind.value,
                signal_key=draft.signal_key[:300],
                fingerprint=draft.fingerprint,
                title=draft.title[:300],
                severity=draft.severity,
                occurred_at=draft.occurred_at,
                repo=draft.repo,
                branch=draft.branch,
                commit_sha=draft.commit_sha,
                pipeline=draft.pipeline,
                job=draft.job,
                url=draft.url,
                environment=draft.environment,
                labels=dict(draft.labels),
                log_excerpt=draft.log_excerpt,
                created_at=now,
            )
            if (signal.source, signal.signal_key) in known:
                continue  # the same vendor event arrived before: its effects exist already
            known.add((signal.source, signal.signal_key))
            correlated = await correlate(uow, draft, signal, now, triage=triage)
            incident_id = signal.incident_id = correlated.incident_id
            if opened is not None and triage is not None:
                if correlated.opened is not None:
                    opened[correlated.opened.id] = (correlated.opened, [])
                if incident_id is not None and incident_id in opened:
                    opened[incident_id][1].append(signal)
            # After its incident, so the batch's new signals and incidents are one insert each.
            await uow.signals.add(signal)
            if incident_id:
                incident_ids.append(incident_id)
                if trace_context is not None:
                    await self._link_trace(uow, incident_id, trace_context)
            signal_ids.append(signal.id)
        delivery.status = DeliveryStatus.IGNORED if meaning.ignored else DeliveryStatus.PROCESSED
        delivery.event_type = meaning.event_type[:64]
        delivery.processed_at = now
        delivery.attempts += 1
        delivery.last_error = None
        delivery.result = {
            "signal_ids": signal_ids,
            "incident_ids": sorted(set(incident_ids)),
            **({"ignored": meaning.ignored} if meaning.ignored else {}),
        }

    @staticmethod
    async def _link_trace(uow: UnitOfWork, incident_id: str, trace_context: str) -> None:
        """Triage of the incident continues this trace (the session holds it already)."""
        incident = await uow.incidents.get(incident_id)
        if incident is not None:
            incident.trace_context = trace_context

    async def _record_failure(self, delivery_id: str, exc: Exception) -> None:
        now = self._clock()
        reason = exc.message if isinstance(exc, DragonError) else f"{type(exc).__name__}: {exc}"
        async with self._uow() as uow:
            delivery = await uow.deliveries.get(delivery_id, for_update=True)
            if delivery is None or delivery.status is not DeliveryStatus.PENDING:
                return
            delivery.attempts += 1
            delivery.last_error = reason[:2000]
            if delivery.attempts >= self._max_attempts:
                delivery.status = DeliveryStatus.DEAD
            else:
                delivery.next_attempt_at = now + backoff(delivery.attempts)
            await uow.commit()
        log.warning(
            "delivery_failed",
            delivery_id=delivery_id,
            attempts=delivery.attempts,
            dead=delivery.status is DeliveryStatus.DEAD,
            error=reason[:500],
        )
