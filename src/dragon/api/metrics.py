"""Dragon's Prometheus metrics: request latency by route template, deliveries accepted, and the
gauges read when /metrics is scraped (queue depth and age, deliveries and runs by status,
pending approvals, breaker states, database pool use).

Metrics live in prometheus-client's process-wide registry: each API process serves its own
figures and Prometheus scrapes every replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from dragon.domain.enums import DeliveryStatus, RunStatus
from dragon.store.operational_stats import OperationalSnapshot

UNMATCHED_ROUTE = "unmatched"  # keeps paths nobody serves from making a label value each
REQUEST_SECONDS = Histogram(
    "dragon_http_request_duration_seconds",
    "Time to answer one HTTP request, by route template",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0),
)
DELIVERIES_ACCEPTED = Counter(
    "dragon_deliveries_accepted_total",
    "Webhook and event deliveries answered with a 2xx (durably in the inbox)",
    ["route"],
)
DELIVERIES = Gauge("dragon_deliveries", "Deliveries in the inbox by status", ["status"])
QUEUE_DEPTH = Gauge("dragon_queue_depth", "Deliveries waiting to be processed")
QUEUE_AGE = Gauge(
    "dragon_queue_oldest_age_seconds", "Age of the oldest delivery waiting to be processed"
)
RUNS = Gauge("dragon_runs", "Action runs by status", ["status"])
PENDING_APPROVALS = Gauge("dragon_pending_approvals", "Decisions waiting for approval")
BREAKER_OPEN = Gauge(
    "dragon_breaker_state",
    "Circuit breaker state: 0 closed, 1 half open, 2 open",
    ["breaker"],
)
POOL_CONNECTIONS = Gauge(
    "dragon_db_pool_connections", "Database pool connections by use", ["pool", "use"]
)
DEADLINE_EXCEEDED = Counter(
    "dragon_request_deadline_exceeded_total", "Requests cut at their deadline", ["route"]
)
STORE_UP = Gauge("dragon_store_up", "1 when the last scrape could read the store")
_BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
_DELIVERY_ROUTES = ("/webhooks/", "/api/v1/events", "/api/ci/event", "/api/observability/alert")


# The labelled children each (method, route, status) records into: looking them up costs
# more than recording, and this runs per request. Bounded, as methods come from the client.
_Recorders = tuple[Any, Any | None]
_RECORDERS: dict[tuple[str, str | None, int], _Recorders] = {}
_MAX_RECORDERS = 4096


def _recorders(method: str, route: str | None, status: int) -> _Recorders:
    template = route or UNMATCHED_ROUTE
    accepted = (
        DELIVERIES_ACCEPTED.labels(template)
        if 200 <= status < 300 and method == "POST" and template.startswith(_DELIVERY_ROUTES)
        else None
    )
    found = (REQUEST_SECONDS.labels(method, template, str(status)), accepted)
    if len(_RECORDERS) < _MAX_RECORDERS:
        _RECORDERS[(method, route, status)] = found
    return found


def observe_request(*, method: str, route: str | None, status: int, seconds: float) -> None:
    latency, accepted = _RECORDERS.get((method, route, status)) or _recorders(method, route, status)
    latency.observe(seconds)
    if accepted is not None:
        accepted.inc()


def publish(snapshot: OperationalSnapshot, *, breakers: Mapping[str, str], now: datetime) -> None:
    STORE_UP.set(1 if snapshot.store_reachable else 0)
    if snapshot.store_reachable:
        # Every status, the absent ones as 0: a gauge set only for the statuses found would
        # keep its last count once none is left (a retried dead delivery would keep
        # DragonDeadDeliveries firing). With the store down the last figures stand.
        for delivery_status in DeliveryStatus:
            count = snapshot.deliveries_by_status.get(delivery_status.value, 0)
            DELIVERIES.labels(delivery_status.value).set(count)
        QUEUE_DEPTH.set(snapshot.deliveries_by_status.get(DeliveryStatus.PENDING.value, 0))
        oldest = snapshot.oldest_pending_at
        QUEUE_AGE.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        for run_status in RunStatus:
            RUNS.labels(run_status.value).set(snapshot.runs_by_status.get(run_status.value, 0))
        PENDING_APPROVALS.set(snapshot.pending_approvals)
    for name, state in breakers.items():
        BREAKER_OPEN.labels(name).set(_BREAKER_VALUES.get(state, 2.0))
    for pool, use in snapshot.pools.items():
        POOL_CONNECTIONS.labels(pool, "size").set(use.size)
        POOL_CONNECTIONS.labels(pool, "checked_out").set(use.checked_out)
        POOL_CONNECTIONS.labels(pool, "overflow").set(use.overflow)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
