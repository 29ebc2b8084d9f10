"""Live updates across replicas through Redis pub/sub: what one replica publishes reaches the
consoles connected to another, exactly once each; with Redis cut, every replica still serves its
own consoles, /readyz says degraded, and the fan-out resumes by itself once Redis is back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI

from dragon.domain.ports import LiveEvent
from dragon.services.container import Services
from dragon.store.live_redis import RedisLiveUpdates
from dragon.workers.live_feed import publish_if_changed
from tests.api.test_ingestion import fixture, post_github
from tests.conftest import FakeClock
from tests.production.conftest import REDIS_URL, AppFactory, RedisLink, with_redis


def hub(app: FastAPI) -> RedisLiveUpdates:
    live = app.state.services.live
    assert isinstance(live, RedisLiveUpdates), type(live)
    return live


async def listening(*apps: FastAPI) -> None:
    await asyncio.wait_for(asyncio.gather(*(hub(a).connected.wait() for a in apps)), timeout=10)


def topics(queue: asyncio.Queue[LiveEvent]) -> list[str]:
    """The topics waiting in `queue`, taken out (other replicas' feeds publish figures too)."""
    waiting = []
    while not queue.empty():
        waiting.append(queue.get_nowait().topic)
    return waiting


async def next_event(
    queue: asyncio.Queue[LiveEvent],
    *,
    topic: str,
    where: Callable[[LiveEvent], bool] = lambda event: True,
) -> LiveEvent:
    async def find() -> LiveEvent:
        while True:
            event = await queue.get()
            if event.topic == topic and where(event):
                return event

    return await asyncio.wait_for(find(), timeout=5)


async def test_an_event_published_on_replica_a_reaches_subscribers_on_both_replicas_once(
    make_app: AppFactory, redis_prefix: str
) -> None:
    async with (
        make_app(**with_redis(REDIS_URL, redis_prefix)) as (app_a, _),
        make_app(**with_redis(REDIS_URL, redis_prefix)) as (app_b, _),
    ):
        await listening(app_a, app_b)
        async with hub(app_a).subscribe() as on_a, hub(app_b).subscribe() as on_b:
            await hub(app_a).publish(LiveEvent(topic="incident", data={"id": "inc_1"}))
            got_a = await next_event(on_a, topic="incident")
            got_b = await next_event(on_b, topic="incident")
            await asyncio.sleep(0.3)  # time for a duplicate to arrive, if one were coming
            extra_on_a = topics(on_a).count("incident")

    assert got_a.data == {"id": "inc_1"}
    assert got_b.data == {"id": "inc_1"}
    assert extra_on_a == 0  # A's own message came back through Redis and was skipped
    assert hub(app_b).last["incident"].data == {"id": "inc_1"}


async def test_figures_for_a_webhook_accepted_by_replica_a_reach_a_console_on_replica_b(
    make_app: AppFactory, redis_prefix: str
) -> None:
    async with (
        make_app(**with_redis(REDIS_URL, redis_prefix)) as (app_a, http_a),
        make_app(**with_redis(REDIS_URL, redis_prefix)) as (app_b, _),
    ):
        await listening(app_a, app_b)
        services_a: Services = app_a.state.services
        marker = await services_a.dashboard.change_marker()
        async with hub(app_b).subscribe() as on_b:
            failure = fixture("github", "workflow_run.completed.failure")
            accepted = await post_github(http_a, failure, "workflow_run")
            await services_a.processor.run_due()
            await publish_if_changed(services_a, marker)
            # The feed may publish figures from before the delivery was processed first.
            event = await next_event(
                on_b, topic="dashboard", where=lambda e: e.data["open_incidents"]["total"] > 0
            )

    assert accepted.status_code == 202
    assert event.data["open_incidents"]["total"] == 1


async def test_with_redis_cut_consoles_get_their_own_replicas_events_and_fan_out_resumes(
    make_app: AppFactory, redis_prefix: str, redis_link: RedisLink, clock: FakeClock
) -> None:
    async with (
        make_app(**with_redis(redis_link.url, redis_prefix)) as (app_a, http_a),
        make_app(**with_redis(redis_link.url, redis_prefix)) as (app_b, _),
    ):
        await listening(app_a, app_b)
        async with hub(app_a).subscribe() as on_a, hub(app_b).subscribe() as on_b:
            await redis_link.down()
            await hub(app_a).publish(LiveEvent(topic="incident", data={"n": 1}))
            during = await next_event(on_a, topic="incident")
            ready = (await http_a.get("/readyz")).json()
            lost_on_b = topics(on_b).count("incident")

            await redis_link.up()
            clock.advance(seconds=10)  # past the redis breaker's reset: a probe may go
            await listening(app_a, app_b)
            await hub(app_a).publish(LiveEvent(topic="incident", data={"n": 2}))
            after_on_b = await next_event(on_b, topic="incident")
            after_on_a = await next_event(on_a, topic="incident")

    assert during.data == {"n": 1}  # delivered in-process although Redis was gone
    assert ready["status"] == "degraded"
    assert "live updates" in ready["degraded"]["redis"]
    assert lost_on_b == 0
    assert after_on_b.data == {"n": 2}
    assert after_on_a.data == {"n": 2}


async def test_a_foreign_message_on_the_channel_is_ignored(
    make_app: AppFactory, redis_prefix: str, redis: Any
) -> None:
    async with make_app(**with_redis(REDIS_URL, redis_prefix)) as (app_a, _):
        await listening(app_a)
        async with hub(app_a).subscribe() as on_a:
            await redis.publish(f"{redis_prefix}live", b"not json")
            await redis.publish(f"{redis_prefix}live", orjson.dumps({"topic": "x"}))
            message = {"origin": "elsewhere", "topic": "incident", "data": {"ok": True}}
            await redis.publish(f"{redis_prefix}live", orjson.dumps(message))
            event = await next_event(on_a, topic="incident")

    assert event.data == {"ok": True}
