"""Triage use cases: every new incident leaves with one proposed decision, and any text can be
evaluated without creating anything (the gatekeeper endpoint).

Automatic triage runs after the incident is committed, never inside ingestion: a worker claims
an untriaged incident under a lease (its own transaction), gathers the evidence and asks the
analyzer outside any transaction, then stores the decision and finishes the claim together.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from dragon.domain.actions import action_spec
from dragon.domain.clock import Clock
from dragon.domain.entities import Decision, Incident, Principal, Signal
from dragon.domain.enums import PrincipalKind, Role
from dragon.domain.errors import Conflict, DragonError
from dragon.domain.ports import FailureAnalyzer, JobLogSource, UnitOfWorkFactory
from dragon.domain.risk import RiskFactor, assess, triage_factors
from dragon.domain.triage import Analysis, TriageContext, analyze
from dragon.services.audit_log import record
from dragon.services.context import Caller
from dragon.services.decisions import Assessed, DecisionService, Proposal
from dragon.traces import current_traceparent, span

log = structlog.get_logger("dragon.triage")

TRIAGE_PRINCIPAL = Principal(
    id="analyzer",
    name="triage",
    role=Role.DEVELOPER,
    kind=PrincipalKind.ANALYZER,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)
TRIAGE_CALLER = Caller(principal=TRIAGE_PRINCIPAL, correlation_id="triage")
MAX_TEXT_CHARS = 2 * 1024 * 1024  # what the analyzer reads at most: the tail
SIGNALS_READ = 3


@dataclass(frozen=True, kw_only=True)
class TriageSettings:
    runbooks: dict[str, str] = field(default_factory=dict)  # alertname -> runbook
    change_freeze: bool = False
    max_attempts: int = 5
    lease: timedelta = timedelta(minutes=2)
    batch: int = 10
    concurrency: int = 4  # triages at once per worker process (each holds one connection)


class BuiltinAnalyzer:
    """The deterministic, offline analyzer of dragon.domain.triage."""

    async def analyze(self, text: str, context: TriageContext) -> Analysis:
        return analyze(text, context)


@dataclass(frozen=True, kw_only=True)
class TriageReport:
    """What triage makes of a text: the analysis, the proposal's risk, what policy would do."""

    analysis: Analysis
    assessed: Assessed
    latency_ms: float


def _retry_in(attempts: int) -> timedelta:
    return min(timedelta(seconds=5 * 2 ** max(0, attempts - 1)), timedelta(minutes=10))


def _rationale(analysis: Analysis) -> str:
    found = analysis.classification
    lines = "; ".join(f"line {e.line}: {e.text}" for e in found.evidence[:3])
    head = (
        f"classified as {found.failure_class.value} (confidence {found.confidence:.2f}): "
        f"{analysis.proposal.rationale}"
    )
    return f"{head}. Evidence: {lines}" if lines else head


class TriageService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        decisions: DecisionService,
        analyzer: FailureAnalyzer,
        clock: Clock,
        settings: TriageSettings,
        logs: JobLogSource | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._closers = list(closers)
        self._listeners: list[Callable[[], None]] = []
        self._uow = uow
        self._decisions = decisions
        self._analyzer = analyzer
        self._clock = clock
        self._settings = settings
        self._logs = logs

    def on_nudge(self, listener: Callable[[], None]) -> None:
        """Called when incidents may be waiting (the triage worker wakes up)."""
        self._listeners.append(listener)

    def nudge(self) -> None:
        """New incidents may exist: the delivery worker says so after settling deliveries."""
        for listener in self._listeners:
            listener()

    async def close(self) -> None:
        """Close the integrations' HTTP clients (the LLM's, the log fetchers')."""
        for close in self._closers:
            await close()

    async def run_pending(self) -> int:
        """One pass: triage the incidents waiting for it; returns how many were settled."""
        async with self._uow(write=False) as uow:
            waiting = await uow.triages.pending(
                now=self._clock(),
                limit=self._settings.batch,
                max_attempts=self._settings.max_attempts,
            )
        # Concurrently: a triage is mostly round trips to the store (claim, read, decide),
        # so one at a time left the worker waiting on the database for most of each one.
        # Each holds its own claim; they share nothing but the pool.
        slots = asyncio.Semaphore(self._settings.concurrency)

        async def one(incident_id: str) -> bool:
            async with slots:
                return await self.triage(incident_id) is not None

        return sum(await asyncio.gather(*(one(i) for i in waiting)))

    async def triage(self, incident_id: str) -> Decision | None:
        """Claim, analyze, propose. None if another worker holds the incident or it failed
        (then it is retried later, up to the attempt limit)."""
        token = secrets.token_hex(16)
        now = self._clock()
        async with self._uow() as uow:
            claimed = await uow.triages.claim(
                incident_id,
                token=token,
                now=now,
                lease_until=now + self._settings.lease,
                max_attempts=self._settings.max_attempts,
            )
            run = await uow.triages.get(incident_id) if claimed else None
            await uow.commit()
        if run is None:
            return None
        try:
            return await self._triage_claimed(incident_id, token)
        except Exception as exc:  # noqa: BLE001 - recorded on the claim and retried later
            reason = exc.message if isinstance(exc, DragonError) else f"{type(exc).__name__}: {exc}"
            give_up = run.attempts >= self._settings.max_attempts
            async with self._uow() as uow:
                await uow.triages.release(
                    incident_id,
                    token=token,
                    error=reason,
                    retry_at=self._clock() + _retry_in(run.attempts),
                    give_up=give_up,
                    now=self._clock(),
                )
                await uow.commit()
            log.warning(
                "triage_failed",
                incident_id=incident_id,
                attempts=run.attempts,
                gave_up=give_up,
                error=reason[:300],
            )
            return None

    async def _triage_claimed(self, incident_id: str, token: str) -> Decision:
        async with self._uow(write=False) as uow:
            incident = await uow.incidents.get(incident_id)
            if incident is None:
                raise Conflict(f"incident {incident_id} is gone", code="incident_not_found")
            signals = await uow.signals.for_incident(incident_id, limit=SIGNALS_READ)
        # Continues the trace of the delivery that opened the incident; the job-log and LLM
        # calls below are its children, and so is the run of the decision it proposes.
        with span(
            "triage", parent=incident.trace_context, attributes={"dragon.incident_id": incident_id}
        ):
            return await self._decide(incident, signals, token)

    async def _decide(self, incident: Incident, signals: list[Signal], token: str) -> Decision:
        incident_id = incident.id
        text, context = await self._evidence(incident, signals)
        started = time.perf_counter()
        analysis = await self._analyzer.analyze(text, context)
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        proposal = self._proposal(analysis, context, incident=incident, latency_ms=latency_ms)
        now = self._clock()
        async with self._uow() as uow:
            decision = await self._decisions.propose_in(uow, TRIAGE_CALLER, proposal, now=now)
            decision.trace_context = current_traceparent()
            if not await uow.triages.complete(
                incident_id, token=token, decision_id=decision.id, now=now
            ):
                # Another worker took the claim over after our lease ran out; it decides.
                raise Conflict("the triage lease was lost", code="triage_lease_lost")
            await record(
                uow,
                TRIAGE_CALLER,
                action="incident.triaged",
                target_type="incident",
                target_id=incident_id,
                now=now,
                details={
                    "decision_id": decision.id,
                    "classification": analysis.classification.failure_class.value,
                    "confidence": analysis.classification.confidence,
                    "action": decision.action,
                    "analyzer": analysis.provenance.get("analyzer"),
                },
            )
            await uow.commit()
        log.info(
            "incident_triaged",
            incident_id=incident_id,
            decision_id=decision.id,
            classification=analysis.classification.failure_class.value,
            action=decision.action,
            status=decision.status.value,
        )
        return decision

    async def _evidence(
        self, incident: Incident, signals: list[Signal]
    ) -> tuple[str, TriageContext]:
        latest = signals[0] if signals else None
        parts = [s.log_excerpt for s in reversed(signals) if s.log_excerpt]
        if latest is not None and self._logs is not None:
            fetched = await self._logs.job_log(latest)
            if fetched:
                parts.append(fetched)
        if not parts:
            parts.append(f"{incident.title}\n{incident.description}")
        labels = {**incident.labels, **(latest.labels if latest else {})}
        context = TriageContext(
            source=incident.source,
            kind=latest.kind if latest else None,
            repo=incident.repo,
            branch=incident.branch,
            commit_sha=incident.commit_sha,
            environment=incident.environment,
            pipeline=latest.pipeline if latest else None,
            job=latest.job if latest else None,
            labels=labels,
            signal_count=incident.signal_count,
            runbooks=self._settings.runbooks,
        )
        return "\n".join(parts)[-MAX_TEXT_CHARS:], context

    def _factors(self, analysis: Analysis, context: TriageContext) -> tuple[RiskFactor, ...]:
        """Triage's risk factors; an LLM's answer never scores below the built-in's."""

        def own(of: Analysis) -> tuple[RiskFactor, ...]:
            return (
                *triage_factors(
                    action=of.proposal.action,
                    confidence=of.classification.confidence,
                    signal_count=context.signal_count,
                    change_freeze=self._settings.change_freeze,
                ),
                *of.extra_factors,
            )

        factors = own(analysis)
        if analysis.baseline is not None:
            floor = self._score(analysis.baseline, own(analysis.baseline), context)
            score = self._score(analysis, factors, context)
            if score < floor:
                factors = (
                    *factors,
                    RiskFactor(
                        "builtin_floor",
                        floor - score,
                        f"raised to the built-in analyzer's score of {floor}",
                    ),
                )
        return factors

    @staticmethod
    def _score(analysis: Analysis, factors: tuple[RiskFactor, ...], context: TriageContext) -> int:
        return assess(
            action=action_spec(analysis.proposal.action),
            branch=context.branch,
            environment=context.environment,
            extra=factors,
        ).score

    def _proposal(
        self,
        analysis: Analysis,
        context: TriageContext,
        *,
        incident: Incident | None,
        latency_ms: float,
    ) -> Proposal:
        found = analysis.classification
        provenance: dict[str, Any] = {
            **analysis.provenance,
            "latency_ms": latency_ms,
            "classification": found.failure_class.value,
            "evidence": [e.as_dict() for e in found.evidence],
            "scores": dict(found.scores),
        }
        title = f"{analysis.proposal.action.replace('_', ' ')}: " + (
            incident.title if incident else found.failure_class.value.replace("_", " ")
        )
        return Proposal(
            action=analysis.proposal.action,
            title=title[:300],
            incident_id=incident.id if incident else None,
            params=dict(analysis.proposal.params),
            rationale=_rationale(analysis),
            impact=analysis.proposal.impact,
            risk_factors=self._factors(analysis, context),
            confidence=found.confidence,
            repo=context.repo,
            branch=context.branch,
            environment=context.environment,
            source=context.source,
            provenance=provenance,
        )

    async def evaluate(self, text: str, context: TriageContext) -> TriageReport:
        """The gatekeeper: analyze any text and say what would happen; nothing is written."""
        context = TriageContext(
            **{**context.__dict__, "runbooks": context.runbooks or self._settings.runbooks}
        )
        started = time.perf_counter()
        analysis = await self._analyzer.analyze(text[-MAX_TEXT_CHARS:], context)
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        proposal = self._proposal(analysis, context, incident=None, latency_ms=latency_ms)
        assessed = await self._decisions.preview(proposal)
        return TriageReport(analysis=analysis, assessed=assessed, latency_ms=latency_ms)
