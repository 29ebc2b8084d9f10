"""The circuit breaker: fails fast while a dependency keeps failing, probes once after the
cool-down, and closes again when the probe succeeds."""

from __future__ import annotations

import pytest

from dragon.domain.breaker import BreakerRegistry, BreakerState, CircuitBreaker, CircuitOpen
from tests.conftest import FakeClock


def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("llm", clock=clock, failure_threshold=3, reset_seconds=30)


def test_breaker_opens_after_the_threshold_of_failures_in_a_row(clock: FakeClock) -> None:
    b = breaker(clock)
    b.failed()
    b.failed()
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    b.failed()
    assert b.state is BreakerState.OPEN
    assert not b.allow()


def test_a_success_resets_the_count_of_failures(clock: FakeClock) -> None:
    b = breaker(clock)
    b.failed()
    b.failed()
    b.succeeded()
    b.failed()
    b.failed()
    assert b.state is BreakerState.CLOSED


def test_open_breaker_refuses_with_circuit_open_and_a_retry_after(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.failed()
    clock.advance(seconds=10)
    with pytest.raises(CircuitOpen) as refused:
        b.check()
    assert refused.value.code == "circuit_open"
    assert refused.value.details["retry_after"] == 20
    assert refused.value.details["breaker"] == "llm"


def test_after_the_cool_down_one_probe_goes_through_at_a_time(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.failed()
    clock.advance(seconds=30)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow(), "a second caller must wait for the probe's outcome"


def test_a_successful_probe_closes_the_breaker(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.failed()
    clock.advance(seconds=31)
    assert b.allow()
    b.succeeded()
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    assert b.allow()


def test_a_failed_probe_opens_the_breaker_for_another_cool_down(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.failed()
    clock.advance(seconds=31)
    assert b.allow()
    b.failed()
    assert b.state is BreakerState.OPEN
    clock.advance(seconds=29)
    assert not b.allow()
    clock.advance(seconds=1)
    assert b.allow()


def test_a_probe_that_never_reports_back_does_not_block_forever(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(3):
        b.failed()
    clock.advance(seconds=30)
    assert b.allow()  # this probe's caller is cancelled and never reports
    clock.advance(seconds=30)
    assert b.allow()


def test_registry_hands_out_one_breaker_per_name_and_lists_states(clock: FakeClock) -> None:
    registry = BreakerRegistry(clock=clock)
    github = registry.breaker("github", failure_threshold=1)
    assert registry.breaker("github") is github
    registry.breaker("slack")
    github.failed()
    assert registry.states() == {"github": "open", "slack": "closed"}


def test_nonsense_thresholds_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", clock=clock, failure_threshold=0)
