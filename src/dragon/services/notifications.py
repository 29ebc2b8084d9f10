"""Notification delivery, run by the worker apart from any request: route outbox events to
channels (throttled), send them with retries and backoff (honouring Retry-After), give up
cleanly when a channel refuses, remind and escalate before approvals expire, and let an admin
list failures and retry them (audited).

A pass never holds a transaction while it talks to a vendor: claiming a notification leases it
(its next attempt moves a minute ahead), the send happens outside the transaction, and the
outcome is written in a second one. A worker that dies mid-send leaves the lease to expire,
and another worker tries again: delivery is at least once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog

from dragon.domain.clock import Clock
from dragon.domain.entities import Notification, NotificationEvent
from dragon.domain.enums import NotificationStatus
from dragon.domain.errors import Conflict, NotFound
from dragon.domain.ids import new_id
from dragon.domain.notification_routing import Route, RoutingTable
from dragon.domain.notifications import (
    DECISION_ESCALATED,
    DECISION_REMINDER,
    RUNBOOK_NOTIFY,
    ChannelFailed,
    IncidentBrief,
    Notice,
    is_throttled,
    notice_of,
    retry_delay,
)
from dragon.domain.ports import (
    NotificationChannel,
    NotificationQuery,
    UnitOfWork,
    UnitOfWorkFactory,
)
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER, Caller
from dragon.services.outbox import notify

# Said on purpose or about a deadline: never held back by the per-incident throttle.
UNTHROTTLED = frozenset({DECISION_REMINDER, DECISION_ESCALATED, RUNBOOK_NOTIFY})

log = structlog.get_logger("dragon.notifications")
_LEASE = timedelta(minutes=1)
_PARALLEL_SENDS = 8


@dataclass(frozen=True)
class _Job:
    notification_id: str
    channel: str
    key: str  # sends for one incident and channel go in order, so updates find their thread
    notice: Notice
    thread: str | None


@dataclass(frozen=True)
class _Outcome:
    notification_id: str
    ref: str | None = None
    error: ChannelFailed | None = None


@dataclass(frozen=True, kw_only=True)
class DeliveryRules:
    max_attempts: int = 6
    remind_before: timedelta = timedelta(minutes=15)
    escalate_before: timedelta = timedelta(minutes=5)


class NotificationService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        routing: RoutingTable,
        channels: Mapping[str, NotificationChannel],
        clock: Clock,
        rules: DeliveryRules = DeliveryRules(),
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._uow = uow
        self._routing = routing
        self._channels = channels
        self._clock = clock
        self._rules = rules
        self._close = close

    async def close(self) -> None:
        if self._close is not None:
            await self._close()

    def target_of(self, channel: str) -> tuple[str, str]:
        """(kind, where) of a configured channel, secrets masked; for display."""
        found = self._channels.get(channel)
        return (found.kind, found.target()) if found else ("unknown", "")

    async def run_due(self) -> int:
        """One worker pass: remind, route, deliver. Returns how much it did."""
        done = await self.remind_due()
        done += await self.route_pending()
        done += await self.deliver_due()
        return done

    async def route_pending(self, *, batch: int = 100) -> int:
        now = self._clock()
        async with self._uow() as uow:
            events = await uow.notifications.claim_unrouted(limit=batch)
            for event in events:
                await self._route(uow, event)
            await uow.notifications.mark_routed([e.id for e in events], now=now)
            await uow.commit()
        return len(events)

    def _route_of(self, event: NotificationEvent, incident: IncidentBrief | None) -> Route | None:
        route = self._routing.route_for(incident)
        escalating = event.event == DECISION_ESCALATED or event.subject.get("escalate")
        if route is not None and escalating:
            return self._routing.escalation_of(route)
        return route

    async def _route(self, uow: UnitOfWork, event: NotificationEvent) -> None:
        now = self._clock()
        notice = notice_of(
            event=event.event, notification_id="", occurred_at=now, subject=event.subject
        )
        route = self._route_of(event, notice.incident)
        if route is None:
            return
        state = notice.state
        for name in route.channels:
            channel = self._channels.get(name)
            if channel is None or not channel.handles(event.event):
                continue
            status = NotificationStatus.PENDING
            if event.incident_id and event.event not in UNTHROTTLED:
                last = await uow.notifications.last_sent(
                    incident_id=event.incident_id, channel=name
                )
                if last is not None and is_throttled(
                    last_sent_at=last.sent_at or last.created_at,
                    last_state=last.state,
                    state=state,
                    now=now,
                    interval=self._routing.throttle,
                ):
                    status = NotificationStatus.THROTTLED
            await uow.notifications.add(
                Notification(
                    id=new_id("ntf", now),
                    event_id=event.id,
                    event=event.event,
                    incident_id=event.incident_id,
                    decision_id=event.decision_id,
                    channel=name,
                    route=route.name,
                    status=status,
                    next_attempt_at=now,
                    state=state,
                    created_at=now,
                )
            )

    async def deliver_due(self, *, batch: int = 25) -> int:
        jobs = await self._claim(batch)
        if not jobs:
            return 0
        groups: dict[str, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        gate = asyncio.Semaphore(_PARALLEL_SENDS)
        results = await asyncio.gather(*(self._send_group(g, gate) for g in groups.values()))
        await self._settle([outcome for group in results for outcome in group])
        return len(jobs)

    async def _claim(self, batch: int) -> list[_Job]:
        now = self._clock()
        jobs: list[_Job] = []
        async with self._uow() as uow:
            for item in await uow.notifications.claim_due(now=now, limit=batch):
                item.attempts += 1
                item.next_attempt_at = now + _LEASE
                event = await uow.notifications.event_of(item.event_id)
                thread = await uow.notifications.thread_of(
                    incident_id=item.incident_id, decision_id=item.decision_id, channel=item.channel
                )
                notice = notice_of(
                    event=item.event,
                    notification_id=item.id,
                    occurred_at=event.created_at if event else now,
                    subject=event.subject if event else {},
                )
                key = f"{item.channel}/{item.incident_id or item.decision_id or item.id}"
                jobs.append(_Job(item.id, item.channel, key, notice, thread))
            await uow.commit()
        return jobs

    async def _send_group(self, jobs: list[_Job], gate: asyncio.Semaphore) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        thread: str | None = None
        async with gate:
            for job in jobs:
                outcome = await self._send(job, thread or job.thread)
                thread = thread or job.thread or outcome.ref
                outcomes.append(outcome)
        return outcomes

    async def _send(self, job: _Job, thread: str | None) -> _Outcome:
        channel = self._channels.get(job.channel)
        if channel is None:
            failure = ChannelFailed(
                f"channel {job.channel} is no longer configured",
                retryable=False,
                code="notification_channel_unknown",
            )
            return _Outcome(job.notification_id, error=failure)
        try:
            ref = await channel.send(job.notice, thread=thread)
        except ChannelFailed as failed:
            return _Outcome(job.notification_id, error=failed)
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the others
            failure = ChannelFailed(f"{channel.kind} failed: {type(exc).__name__}", retryable=True)
            return _Outcome(job.notification_id, error=failure)
        return _Outcome(job.notification_id, ref=ref)

    async def _settle(self, outcomes: list[_Outcome]) -> None:
        now = self._clock()
        async with self._uow() as uow:
            for outcome in outcomes:
                item = await uow.notifications.get(outcome.notification_id, for_update=True)
                if item is None or item.status is not NotificationStatus.PENDING:
                    continue
                if outcome.error is None:
                    item.status = NotificationStatus.SENT
                    item.sent_at = now
                    item.last_error = None
                    item.external_ref = outcome.ref
                    continue
                await self._failed(uow, item, outcome.error)
            await uow.commit()

    async def _failed(self, uow: UnitOfWork, item: Notification, error: ChannelFailed) -> None:
        now = self._clock()
        item.last_error = error.message[:1000]
        if error.retryable and item.attempts < self._rules.max_attempts:
            item.next_attempt_at = now + retry_delay(item.attempts, retry_after=error.retry_after)
            log.info(
                "notification_retry_scheduled",
                notification_id=item.id,
                channel=item.channel,
                attempts=item.attempts,
                next_attempt_at=item.next_attempt_at.isoformat(),
            )
            return
        item.status = NotificationStatus.FAILED
        log.warning(
            "notification_failed",
            notification_id=item.id,
            channel=item.channel,
            attempts=item.attempts,
            code=error.code,
        )
        await record(
            uow,
            SYSTEM_CALLER,
            action="notification.failed",
            target_type="notification",
            target_id=item.id,
            now=now,
            details={
                "channel": item.channel,
                "event": item.event,
                "attempts": item.attempts,
                "code": error.code,
                "error": item.last_error,
            },
        )

    async def remind_due(self, *, batch: int = 100) -> int:
        """Remind before a pending decision expires; escalate to the next route just before."""
        if self._rules.remind_before <= timedelta(0):
            return 0
        now = self._clock()
        sent = 0
        async with self._uow() as uow:
            horizon = now + max(self._rules.remind_before, self._rules.escalate_before)
            for decision in await uow.notifications.pending_expiring(before=horizon, limit=batch):
                assert decision.expires_at is not None
                left = decision.expires_at - now
                if left <= timedelta(0):
                    continue  # the expiry sweep owns it now
                event = DECISION_REMINDER
                if left <= self._rules.escalate_before:
                    event = DECISION_ESCALATED
                elif left > self._rules.remind_before:
                    continue
                if await uow.notifications.has_event(decision_id=decision.id, event=event):
                    continue
                await notify(
                    uow,
                    event=event,
                    now=now,
                    decision=decision,
                    details={"seconds_left": int(left.total_seconds())},
                )
                sent += 1
            await uow.commit()
        return sent

    async def find(self, query: NotificationQuery) -> tuple[list[Notification], str | None]:
        async with self._uow(write=False) as uow:
            return await uow.notifications.find(query)

    async def get(self, notification_id: str) -> Notification:
        async with self._uow(write=False) as uow:
            found = await uow.notifications.get(notification_id)
        if found is None:
            raise NotFound(f"no notification {notification_id}", code="notification_not_found")
        return found

    async def retry(self, caller: Caller, notification_id: str) -> Notification:
        """Send a failed notification again, attempts reset; audited."""
        now = self._clock()
        async with self._uow() as uow:
            item = await uow.notifications.get(notification_id, for_update=True)
            if item is None:
                raise NotFound(f"no notification {notification_id}", code="notification_not_found")
            if item.status is not NotificationStatus.FAILED:
                raise Conflict(
                    f"notification {notification_id} is {item.status}; "
                    "only failed ones are retried",
                    code="notification_not_failed",
                )
            item.status = NotificationStatus.PENDING
            item.attempts = 0
            item.next_attempt_at = now
            await record(
                uow,
                caller,
                action="notification.retried",
                target_type="notification",
                target_id=item.id,
                now=now,
                details={
                    "channel": item.channel,
                    "event": item.event,
                    "last_error": item.last_error,
                },
            )
            await uow.commit()
        return item
