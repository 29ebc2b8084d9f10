"""The fleet's breakers on every replica: a breaker open in one process (a worker calling a hung
integration serves no HTTP of its own) shows in every API replica's /readyz and /metrics through
the Redis board; a process that stops reporting drops off; with Redis gone each replica shows
its own breakers only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from dragon.domain.breaker import CircuitBreaker
from dragon.domain.clock import system_clock
from dragon.store.breaker_board import RedisBreakerBoard, worst
from dragon.store.redis_client import RedisGuard, connect_redis
from tests.production.conftest import REDIS_URL, AppFactory

REPORT_SECONDS = 0.1


def with_board(prefix: str) -> dict[str, Any]:
    return {
        "redis_url": SecretStr(REDIS_URL),
        "redis_key_prefix": prefix,
        "readiness_cache_seconds": 0,
        "breaker_report_seconds": REPORT_SECONDS,
    }


async def readyz_until(
    http: httpx.AsyncClient, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """/readyz, asked again until `check` holds (reports travel every REPORT_SECONDS, later on
    a loaded machine) or 10 s pass; the last answer either way."""
    deadline = time.monotonic() + 10
    while True:
        ready: dict[str, Any] = (await http.get("/readyz")).json()
        if check(ready) or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(REPORT_SECONDS)


def trip(app: FastAPI, name: str) -> None:
    app.state.services.breakers.breaker(name, failure_threshold=1).failed()


async def test_a_breaker_open_on_one_process_shows_on_every_replicas_readyz_and_metrics(
    make_app: AppFactory, redis_prefix: str
) -> None:
    async with (
        make_app(**with_board(redis_prefix)) as (app_a, http_a),
        make_app(**with_board(redis_prefix)) as (app_b, _),
    ):
        app_a.state.services.breakers.breaker("slack")  # closed here
        trip(app_b, "llm")
        ready = await readyz_until(
            http_a,
            lambda r: r["breakers"].get("llm") == "open" and len(r.get("fleet_breakers", {})) == 2,
        )
        metrics = (await http_a.get("/metrics")).text

    assert ready["status"] == "ok"  # an open integration breaker is not unreadiness
    assert ready["breakers"]["llm"] == "open"
    assert ready["breakers"]["slack"] == "closed"
    processes = ready["fleet_breakers"]
    assert len(processes) == 2
    assert all(name.startswith("api@") for name in processes)
    assert [p.get("llm") for p in processes.values()].count("open") == 1  # B's alone
    assert 'dragon_breaker_state{breaker="llm"} 2.0' in metrics


async def test_a_process_that_stops_reporting_drops_off_the_board(
    make_app: AppFactory, redis_prefix: str
) -> None:
    async with make_app(**with_board(redis_prefix)) as (_, http_a):
        async with make_app(**with_board(redis_prefix)) as (app_b, _):
            trip(app_b, "github")
            while_up = await readyz_until(http_a, lambda r: r["breakers"].get("github") == "open")
        # B's report expires (3 periods, at least 1 s) once it stops reporting.
        after = await readyz_until(http_a, lambda r: "github" not in r["breakers"])

    assert while_up["breakers"]["github"] == "open"
    assert "github" not in after["breakers"]
    assert len(after["fleet_breakers"]) == 1


async def test_a_report_that_expires_while_the_board_is_read_is_left_out(
    redis_prefix: str,
) -> None:
    redis = connect_redis(REDIS_URL, timeout_seconds=2)
    guard = RedisGuard(redis, breaker=CircuitBreaker("redis", clock=system_clock))
    board = RedisBreakerBoard(guard, prefix=redis_prefix, process="api@a", every_seconds=1)
    leaving = RedisBreakerBoard(guard, prefix=redis_prefix, process="api@b", every_seconds=1)
    await board.report({"github": "closed"})
    await leaving.report({"github": "open"})
    read = redis.hgetall

    async def expired_first(name: str) -> Any:
        # api@b's key runs out after the scan found it and before its states are read.
        if name.endswith("api@b"):
            await redis.delete(name)
        return await read(name)

    redis.hgetall = expired_first  # type: ignore[method-assign]
    try:
        fleet = await board.fleet()
    finally:
        await redis.delete(f"{redis_prefix}breakers:api@a")
        await redis.aclose()

    assert fleet == {"api@a": {"github": "closed"}}


def test_the_worst_state_of_a_breaker_across_processes_wins() -> None:
    assert worst({"llm": "closed"}, {"llm": "half_open"}, {"llm": "closed"}) == {"llm": "half_open"}
    assert worst({"llm": "open"}, {"llm": "half_open", "github": "closed"}) == {
        "github": "closed",
        "llm": "open",
    }
    assert worst() == {}
