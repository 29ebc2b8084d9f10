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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from dragon.domain.actions import action_spec
from dragon.domain.clock import Clock
from dragon.domain.entities import Decision, Incident, Principal, Signal, TriageClaim
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
CLAIM_TRIES = 3  # reads of the waiting incidents per pass while other workers claim them first


@dataclass(frozen=True, kw_only=True)
class TriageSettings:
    runbooks: dict[str, str] = field(default_factory=dict)  # alertname -> runbook
    change_freeze: bool = False
    max_attempts: int = 5
    lease: timedelta = timedelta(minutes=2)
    batch: int = 25  # incidents per claim: one claim (with its read), one write transaction
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


@dataclass(frozen=True, kw_only=True)
class _Analyzed:
    """One claimed incident, analyzed: what its decision is made of."""

    incident: Incident
    analysis: Analysis
    proposal: Proposal
    trace_context: str | None
    trace_id: str | None  # for the log line written when the decision is stored


class _ClaimLost(Exception):
    """A claim of the batch being stored was taken over by another worker."""


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

    @property
    def batch_size(self) -> int:
        """Incidents one pass takes at most."""
        return self._settings.batch

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

    async def run_pending(self, *, waited: timedelta = timedelta(0)) -> int:
        """One pass: triage the incidents waiting for it (for at least `waited`); returns
        how many were settled.

        Workers read the same oldest waiting incidents, so the one that claims them second
        gets none of them: it reads again, and finds the ones after them."""
        for _ in range(CLAIM_TRIES):
            async with self._uow(write=False) as uow:
                waiting = await uow.triages.pending(
                    now=self._clock() - waited,
                    limit=self._settings.batch,
                    max_attempts=self._settings.max_attempts,
                )
            if not waiting:
                return 0
            decided = await self._triage_batch(waiting)
            if decided is not None:
                return len(decided)
        return 0

    @property
    def calls_out(self) -> bool:
        """Whether triage waits on other services (an LLM, a CI system's job logs); if not,
        it is CPU work of a few milliseconds per incident."""
        return self._logs is not None or not isinstance(self._analyzer, BuiltinAnalyzer)

    def opening_claim(self) -> TriageClaim:
        """A claim for the incidents a processing pass is about to open (written with them),
        so `run_opened` triages them next without a claim transaction: the first attempt,
        under this worker's token and the configured lease, as `claim_many` would take it."""
        return TriageClaim(
            token=secrets.token_hex(16), lease_until=self._clock() + self._settings.lease
        )

    async def run_opened(
        self,
        opened: Sequence[tuple[Incident, Sequence[Signal]]],
        *,
        claim: TriageClaim,
        batch: int | None = None,
    ) -> int:
        """Triage incidents a committed pass opened under `claim`, from what the pass holds:
        each incident and its signals (newest first; the pass's are all it has). Their claims
        are checked by token when the decisions are stored, as for any claim, so one whose
        lease ran out meanwhile is left to the worker that took it over. Returns how many
        were decided, `batch` at a time (the configured batch size by default)."""
        incidents = {incident.id: incident for incident, _ in opened}
        evidence = {incident.id: list(signals[:SIGNALS_READ]) for incident, signals in opened}
        size = batch or self._settings.batch
        decided = 0
        ids = list(incidents)
        for start in range(0, len(ids), size):
            part = {i: incidents[i] for i in ids[start : start + size]}
            decided += len(
                await self._decide(
                    part, evidence, attempts=dict.fromkeys(part, 1), token=claim.token
                )
            )
        return decided

    async def triage(self, incident_id: str) -> Decision | None:
        """Claim, analyze, propose. None if another worker holds the incident or it failed
        (then it is retried later, up to the attempt limit)."""
        decided = await self._triage_batch([incident_id])
        return decided[0] if decided else None

    async def _triage_batch(self, incident_ids: Sequence[str]) -> list[Decision] | None:
        """A batch costs one claim and one write transaction, however many incidents it holds
        (docs/decisions/0020-pipeline-batches.md, 0022): the claims under one token with the
        incidents and their latest signals in two statements, and the decisions with their
        audit events and notifications in one commit. Between the read and the write, each
        incident is analyzed on its own (concurrently, outside any transaction); one that
        fails is released for a retry and the others go on. None if it claimed none of them."""
        token = secrets.token_hex(16)
        now = self._clock()
        # The claims and what they claimed, read in the claim's own transaction (the
        # incidents and signals are committed already): one round of BEGIN and COMMIT less.
        async with self._uow() as uow:
            attempts = await uow.triages.claim_many(
                incident_ids,
                token=token,
                now=now,
                lease_until=now + self._settings.lease,
                max_attempts=self._settings.max_attempts,
            )
            if attempts:
                incidents = {i.id: i for i in await uow.incidents.get_many(list(attempts))}
                evidence = await uow.signals.latest_for(list(incidents), limit=SIGNALS_READ)
            await uow.commit()
        if not attempts:
            return None
        for gone in set(attempts) - set(incidents):
            await self._release(
                gone,
                token=token,
                attempts=attempts[gone],
                exc=Conflict(f"incident {gone} is gone", code="incident_not_found"),
            )
        return await self._decide(incidents, evidence, attempts=attempts, token=token)

    async def _decide(
        self,
        incidents: Mapping[str, Incident],
        evidence: Mapping[str, list[Signal]],
        *,
        attempts: Mapping[str, int],
        token: str,
    ) -> list[Decision]:
        """Analyze claimed incidents and store their decisions in one transaction; an
        analysis or a store that fails releases its claim for a retry."""
        # Concurrently: with an LLM, analysis is a round trip of its own. Each holds its own
        # claim; they share nothing but the analyzer's client.
        slots = asyncio.Semaphore(self._settings.concurrency)

        async def prepare(incident: Incident) -> _Analyzed | None:
            async with slots:
                try:
                    return await self._analyze_claimed(incident, evidence.get(incident.id, []))
                except Exception as exc:  # noqa: BLE001 - recorded on the claim, retried later
                    await self._release(
                        incident.id, token=token, attempts=attempts[incident.id], exc=exc
                    )
                    return None

        analyzed = [a for a in await asyncio.gather(*map(prepare, incidents.values())) if a]
        try:
            return await self._store(analyzed, token=token)
        except Exception as exc:  # noqa: BLE001 - each one on its own below, failures recorded
            if len(analyzed) == 1:
                one = analyzed[0]
                await self._release(
                    one.incident.id, token=token, attempts=attempts[one.incident.id], exc=exc
                )
                return []
            log.warning("triage_batch_failed", error_type=type(exc).__name__, fallback="one by one")
        decided: list[Decision] = []
        for one in analyzed:
            try:
                decided += await self._store([one], token=token)
            except Exception as exc:  # noqa: BLE001 - recorded on the claim, retried later
                await self._release(
                    one.incident.id, token=token, attempts=attempts[one.incident.id], exc=exc
                )
        return decided

    async def _release(
        self, incident_id: str, *, token: str, attempts: int, exc: Exception
    ) -> None:
        reason = exc.message if isinstance(exc, DragonError) else f"{type(exc).__name__}: {exc}"
        give_up = attempts >= self._settings.max_attempts
        async with self._uow() as uow:
            await uow.triages.release(
                incident_id,
                token=token,
                error=reason,
                retry_at=self._clock() + _retry_in(attempts),
                give_up=give_up,
                now=self._clock(),
            )
            await uow.commit()
        log.warning(
            "triage_failed",
            incident_id=incident_id,
            attempts=attempts,
            gave_up=give_up,
            error=reason[:300],
        )

    async def _analyze_claimed(self, incident: Incident, signals: list[Signal]) -> _Analyzed:
        # Continues the trace of the delivery that opened the incident; the job-log and LLM
        # calls below are its children, and so is the run of the decision it proposes.
        with span(
            "triage", parent=incident.trace_context, attributes={"dragon.incident_id": incident.id}
        ):
            text, context = await self._evidence(incident, signals)
            started = time.perf_counter()
            analysis = await self._analyzer.analyze(text, context)
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
            proposal = self._proposal(analysis, context, incident=incident, latency_ms=latency_ms)
            return _Analyzed(
                incident=incident,
                analysis=analysis,
                proposal=proposal,
                trace_context=current_traceparent(),
                trace_id=structlog.contextvars.get_contextvars().get("trace_id"),
            )

    async def _store(self, analyzed: list[_Analyzed], *, token: str) -> list[Decision]:
        """The decisions of the claims this worker still holds, in one transaction: a claim
        another worker took over after our lease ran out is left to it (it decides).

        The claims are checked by the statement that marks them done; if one was lost (a
        lease outlived: rare), that transaction is rolled back and the batch stored again,
        its claims held first, so the rest are decided and the lost one left alone."""
        if not analyzed:
            return []
        try:
            return await self._store_claimed(analyzed, token=token, hold_first=False)
        except _ClaimLost:
            return await self._store_claimed(analyzed, token=token, hold_first=True)

    async def _store_claimed(
        self, analyzed: list[_Analyzed], *, token: str, hold_first: bool
    ) -> list[Decision]:
        now = self._clock()
        decided: list[Decision] = []
        async with self._uow() as uow:
            claimed = [a.incident.id for a in analyzed]
            if hold_first:
                held = await uow.triages.hold(claimed, token=token, now=now)
            else:
                held = set(claimed)
            # Read once for the batch; each proposal below finds its incident loaded. Kept
            # referenced: the session's identity map holds its objects weakly, so a result
            # dropped here would be collected and every proposal would read its row again.
            loaded = await uow.incidents.get_many(held)
            policy = await self._decisions.policy_in(uow) if held else None
            for one in analyzed:
                if one.incident.id not in held:
                    log.warning("triage_lease_lost", incident_id=one.incident.id)
                    continue
                decision = await self._decisions.propose_in(
                    uow, TRIAGE_CALLER, one.proposal, now=now, policy=policy
                )
                decision.trace_context = one.trace_context
                await record(
                    uow,
                    TRIAGE_CALLER,
                    action="incident.triaged",
                    target_type="incident",
                    target_id=one.incident.id,
                    now=now,
                    details={
                        "decision_id": decision.id,
                        "classification": one.analysis.classification.failure_class.value,
                        "confidence": one.analysis.classification.confidence,
                        "action": decision.action,
                        "analyzer": one.analysis.provenance.get("analyzer"),
                    },
                )
                decided.append(decision)
            completing = {str(d.incident_id): d.id for d in decided}
            done = await uow.triages.complete_many(completing, token=token, now=now)
            if done != set(completing):
                raise _ClaimLost  # rolled back; stored again holding the claims first
            await uow.commit()
            del loaded
        stored = [a for a in analyzed if a.incident.id in held]
        for decision, one in zip(decided, stored, strict=True):
            traced = {"trace_id": one.trace_id} if one.trace_id else {}
            log.info(
                "incident_triaged",
                incident_id=decision.incident_id,
                decision_id=decision.id,
                classification=one.analysis.classification.failure_class.value,
                action=decision.action,
                status=decision.status.value,
                **traced,
            )
        return decided

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
