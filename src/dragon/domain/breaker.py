"""Circuit breakers: a dependency that keeps failing is left alone for a while, so callers fail
fast instead of each paying its timeout, and one probe at a time finds out when it is back.

    closed ──(failure_threshold failures in a row)──► open ──(reset_seconds pass)──► half_open
      ▲                                                 ▲                               │
      └──────────────── probe succeeded ────────────────┴──────── probe failed ─────────┘

One registry per process holds a breaker per integration or endpoint; /readyz and /metrics show
their states. Time comes from the injected clock, so tests move it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from dragon.domain.clock import Clock
from dragon.domain.errors import Unavailable


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Unavailable):
    default_code = "circuit_open"


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        clock: Clock,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
    ) -> None:
        if failure_threshold < 1 or reset_seconds <= 0:
            raise ValueError("a breaker needs failure_threshold >= 1 and reset_seconds > 0")
        self.name = name
        self._clock = clock
        self._threshold = failure_threshold
        self._reset = timedelta(seconds=reset_seconds)
        self._failures = 0
        self._opened_at: datetime | None = None
        self._probe_started: datetime | None = None

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go ahead now? In half-open state only one probe is let through at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        now = self._clock()
        # A probe whose caller never reported back (cancelled, say) does not block forever.
        stale = self._probe_started is not None and now - self._probe_started >= self._reset
        if state is BreakerState.HALF_OPEN and (self._probe_started is None or stale):
            self._probe_started = now
            return True
        return False

    def check(self) -> None:
        """`allow()`, raising CircuitOpen when the call may not go ahead."""
        if not self.allow():
            raise CircuitOpen(
                f"{self.name} is failing; Dragon is not calling it for now",
                breaker=self.name,
                retry_after=max(1, int(self._seconds_until_probe())),
            )

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_started = None

    def failed(self) -> None:
        self._failures += 1
        if self._probe_started is not None or self._failures >= self._threshold:
            self._opened_at = self._clock()
        self._probe_started = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "failures": self._failures,
            "opened_at": self._opened_at.isoformat() if self._opened_at else None,
        }

    def _seconds_until_probe(self) -> float:
        if self._opened_at is None:
            return 0.0
        return (self._opened_at + self._reset - self._clock()).total_seconds()


class BreakerRegistry:
    """The process's breakers by name, made on first use."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(
        self, name: str, *, failure_threshold: int = 5, reset_seconds: float = 30.0
    ) -> CircuitBreaker:
        found = self._breakers.get(name)
        if found is None:
            found = CircuitBreaker(
                name,
                clock=self._clock,
                failure_threshold=failure_threshold,
                reset_seconds=reset_seconds,
            )
            self._breakers[name] = found
        return found

    def states(self) -> dict[str, str]:
        return {name: b.state.value for name, b in sorted(self._breakers.items())}
