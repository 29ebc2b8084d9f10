"""The dashboard's figures, as JSON for other tools and on the console's page."""

from __future__ import annotations

from typing import Any

import httpx

from dragon.domain.dashboard import WINDOW
from dragon.services.container import Services
from dragon.workers.live_feed import feed_step, publish_if_changed
from tests.api.console_session import log_in, page
from tests.conftest import FakeClock, Keys


async def open_incident(client: httpx.AsyncClient, keys: Keys, **body: Any) -> str:
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "checkout is down", **body},
        headers=keys.of("developer"),
    )
    assert response.status_code == 201, response.text
    incident_id: str = response.json()["id"]
    return incident_id


async def figures(client: httpx.AsyncClient, keys: Keys) -> dict[str, Any]:
    response = await client.get("/api/v1/dashboard", headers=keys.of("viewer"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_empty_store_has_zero_counts_and_no_means(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    body = await figures(client, keys)
    assert body["open_incidents"] == {
        "total": 0,
        "by_severity": {"SEV1": 0, "SEV2": 0, "SEV3": 0, "SEV4": 0},
        "by_source": {},
    }
    assert body["mtta_seconds"] is None
    assert body["mttr_seconds"] is None
    assert body["auto_remediation_rate"] is None
    assert len(body["incidents_per_day"]) == 14
    assert body["window_days"] == WINDOW.days


async def test_figures_count_open_incidents_and_time_acknowledgement_and_resolution(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    first = await open_incident(client, keys, severity="SEV1", source="github")
    second = await open_incident(client, keys, severity="SEV2", source="alertmanager")
    await open_incident(client, keys, severity="SEV2", source="alertmanager")
    clock.advance(minutes=10)
    ack = f"/api/v1/incidents/{first}/acknowledge"
    assert (await client.post(ack, headers=keys.of("developer"))).is_success
    clock.advance(minutes=20)
    resolve = f"/api/v1/incidents/{second}/resolve"
    assert (await client.post(resolve, json={}, headers=keys.of("developer"))).is_success

    body = await figures(client, keys)
    assert body["open_incidents"]["total"] == 2  # acknowledged counts as open; resolved not
    assert body["open_incidents"]["by_severity"] == {"SEV1": 1, "SEV2": 1, "SEV3": 0, "SEV4": 0}
    assert body["open_incidents"]["by_source"] == {"alertmanager": 1, "github": 1}
    assert body["mtta_seconds"] == 600.0
    assert body["mttr_seconds"] == 1800.0
    today = body["incidents_per_day"][-1]
    assert today == {"date": clock.now.date().isoformat(), "count": 3}


async def test_auto_remediation_rate_and_approval_latency(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    low = {"action": "rerun_job", "title": "rerun", "branch": "feature/x"}
    prod = {"action": "rollback_deployment", "title": "roll back", "environment": "production"}
    for body in (low, low, prod):
        created = await client.post("/api/v1/decisions", json=body, headers=keys.of("developer"))
        assert created.status_code == 201, created.text
    pending = created.json()["id"]
    clock.advance(minutes=5)
    for who in ("approver", "approver2"):
        response = await client.post(
            f"/api/v1/decisions/{pending}/approve",
            json={"justification": "looked at the graphs"},
            headers=keys.of(who),
        )
        assert response.is_success, response.text
    body = await figures(client, keys)
    assert body["decisions_in_window"] == 3
    assert body["auto_remediation_rate"] == round(2 / 3, 3)
    assert body["approval_latency_seconds"] == 300.0
    assert body["pending_approvals"] == 0


async def test_incidents_older_than_the_window_leave_the_means(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    old = await open_incident(client, keys)
    clock.advance(minutes=1)
    await client.post(f"/api/v1/incidents/{old}/acknowledge", headers=keys.of("developer"))
    assert (await figures(client, keys))["mtta_seconds"] == 60.0
    clock.advance(days=31)
    assert (await figures(client, keys))["mtta_seconds"] is None


async def test_the_dashboard_page_shows_the_same_figures_with_a_chart(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await open_incident(client, keys, severity="SEV1", source="jenkins")
    await log_in(client, keys.viewer)
    response = await page(client, "/")
    assert response.status_code == 200
    assert '<span data-figure="open-total">1</span>' in response.text
    assert '<svg class="chart"' in response.text
    assert "Incidents opened per day" in response.text
    panel = await page(client, "/dashboard/panel")
    assert "<html" not in panel.text
    assert '<span data-figure="open-total">1</span>' in panel.text


async def test_the_live_feed_publishes_new_figures_only_when_something_changed(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    async with services.live.subscribe() as queue:
        marker = await publish_if_changed(services, None)
        assert queue.get_nowait().data["open_incidents"]["total"] == 0
        assert await publish_if_changed(services, marker) == marker
        assert queue.empty()
        await open_incident(client, keys)
        marker = await publish_if_changed(services, marker)
        event = queue.get_nowait()
        assert event.topic == "dashboard"
        assert event.data["open_incidents"]["total"] == 1


async def test_the_live_feed_asks_the_store_nothing_while_no_console_in_the_process_watches(
    client: httpx.AsyncClient, keys: Keys, services: Services
) -> None:
    services.live.last.pop("dashboard", None)
    await open_incident(client, keys)
    # Nobody subscribed: the marker is not even read, and no figures are published.
    assert await feed_step(services, None) is None
    assert "dashboard" not in services.live.last

    async with services.live.subscribe() as queue:
        marker = await feed_step(services, None)
        assert marker is not None
        assert queue.get_nowait().data["open_incidents"]["total"] == 1
    await open_incident(client, keys)
    assert await feed_step(services, marker) == marker  # the watcher left: asked nothing
    assert services.live.last["dashboard"].data["open_incidents"]["total"] == 1


async def test_the_stream_asks_for_an_event_stream_accept_header(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get("/api/v1/dashboard/stream", headers=keys.of("viewer"))
    assert response.status_code == 406
    assert response.json()["code"] == "event_stream_required"
