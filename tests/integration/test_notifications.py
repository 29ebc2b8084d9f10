"""Notifications end to end: the outbox is written with the state change, the worker routes and
delivers to real HTTP peers on 127.0.0.1, retries 429 and 5xx honouring Retry-After, gives up
cleanly on other 4xx, throttles, reminds and escalates, and never shows a channel's secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from dragon.app import create_app
from dragon.domain.enums import Role
from dragon.logs import configure_logging
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.services.outbox import notify
from dragon.settings import Settings
from dragon.store.unit_of_work import SqlUnitOfWorkFactory
from tests.conftest import FakeClock, Keys
from tests.notify_setup import (
    PAGERDUTY_KEY,
    TEAMS_SECRET_PATH,
    WEBHOOK_SECRET,
    notify_settings,
)
from tests.peers import Answer, HttpPeer, running_peer
from tests.slack_peer import FakeSlack
from tests.support.readiness import app_ready


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    yield from running_peer()


@pytest.fixture
def slack_api() -> Iterator[HttpPeer]:
    yield from running_peer(FakeSlack())


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, peer: HttpPeer, slack_api: HttpPeer) -> Settings:
    return notify_settings(settings, tmp_path=tmp_path, peer_url=peer.url, slack_url=slack_api.url)


async def open_incident(
    client: httpx.AsyncClient, keys: Keys, *, severity: str = "SEV3", **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "checkout 500s after deploy", "severity": severity, **body},
        headers=keys.of("developer"),
    )
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


async def notifications(
    client: httpx.AsyncClient, keys: Keys, **query: str
) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/notifications", params=query, headers=keys.of("admin"))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def audit_actions(client: httpx.AsyncClient, keys: Keys, target_id: str) -> list[str]:
    response = await client.get(
        "/api/v1/audit", params={"target_id": target_id}, headers=keys.of("admin")
    )
    return [event["action"] for event in response.json()["items"]]


def on(peer: HttpPeer, path: str) -> list[Any]:
    return [got for got in peer.received if got.path == path]


async def test_an_opened_incident_reaches_a_webhook_that_verifies_with_standardwebhooks(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer
) -> None:
    incident = await open_incident(client, keys)
    assert peer.received == []  # nothing is sent inside the request
    await services.notifications.run_due()
    [got] = on(peer, "/hook")
    payload = Webhook(WEBHOOK_SECRET).verify(got.body, got.headers)
    assert payload["type"] == "incident.opened"
    assert payload["data"]["incident"]["id"] == incident["id"]
    assert payload["data"]["incident"]["severity"] == "SEV3"
    [sent] = await notifications(client, keys, incident_id=incident["id"])
    assert (sent["status"], sent["channel"], sent["route"]) == ("sent", "hook", "default")
    assert got.headers["webhook-id"] == sent["id"]


async def test_a_forged_signature_does_not_verify(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer
) -> None:
    await open_incident(client, keys)
    await services.notifications.run_due()
    [got] = on(peer, "/hook")
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUJD" * 8).verify(got.body, got.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(WEBHOOK_SECRET).verify(got.body + b" ", got.headers)


async def test_each_state_change_notifies_once_and_a_refused_one_not_at_all(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer
) -> None:
    incident = await open_incident(client, keys)
    path = f"/api/v1/incidents/{incident['id']}"
    assert (await client.post(f"{path}/resolve", json={}, headers=keys.of("developer"))).is_success
    refused = await client.post(f"{path}/acknowledge", headers=keys.of("developer"))
    assert refused.status_code == 409
    await services.notifications.run_due()
    events = [Webhook(WEBHOOK_SECRET).verify(g.body, g.headers)["type"] for g in on(peer, "/hook")]
    assert events == ["incident.opened", "incident.resolved"]


async def test_delivery_retries_on_429_and_5xx_honouring_retry_after(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer, clock: FakeClock
) -> None:
    peer.script = [
        Answer(429, {"error": "slow down"}, headers={"Retry-After": "30"}),
        Answer(503, {"error": "maintenance"}),
        Answer(200, {}),
    ]
    incident = await open_incident(client, keys)
    await services.notifications.run_due()
    [first] = await notifications(client, keys, incident_id=incident["id"])
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert "429" in first["last_error"]
    clock.advance(seconds=29)
    await services.notifications.run_due()
    assert len(on(peer, "/hook")) == 1  # Retry-After is honoured: not before 30 s
    clock.advance(seconds=1)
    await services.notifications.run_due()
    [second] = await notifications(client, keys, incident_id=incident["id"])
    assert (second["status"], second["attempts"]) == ("pending", 2)
    assert "503" in second["last_error"]
    clock.advance(seconds=4)
    await services.notifications.run_due()
    [done] = await notifications(client, keys, incident_id=incident["id"])
    assert (done["status"], done["attempts"], done["last_error"]) == ("sent", 3, None)
    ids = {got.headers["webhook-id"] for got in on(peer, "/hook")}
    assert ids == {done["id"]}  # one message id across retries: receivers deduplicate


async def test_delivery_gives_up_cleanly_on_4xx_and_an_admin_retries_it(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer, clock: FakeClock
) -> None:
    peer.script = [Answer(410, {"error": "this hook was deleted"})]
    incident = await open_incident(client, keys)
    await services.notifications.run_due()
    [failed] = await notifications(client, keys, status="failed")
    assert failed["incident_id"] == incident["id"]
    assert failed["attempts"] == 1
    assert "410" in failed["last_error"]
    clock.advance(hours=2)
    await services.notifications.run_due()
    assert len(on(peer, "/hook")) == 1  # given up: never tried again by itself
    assert "notification.failed" in await audit_actions(client, keys, failed["id"])

    path = f"/api/v1/notifications/{failed['id']}/retry"
    assert (await client.post(path, headers=keys.of("approver"))).status_code == 403
    retried = await client.post(path, headers=keys.of("admin"))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
    await services.notifications.run_due()
    [sent] = await notifications(client, keys, incident_id=incident["id"])
    assert sent["status"] == "sent"
    assert "notification.retried" in await audit_actions(client, keys, failed["id"])
    again = await client.post(path, headers=keys.of("admin"))
    assert (again.status_code, again.json()["code"]) == (409, "notification_not_failed")


async def test_a_channel_that_keeps_failing_is_failed_after_the_last_attempt(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer, clock: FakeClock
) -> None:
    peer.responder = lambda _: Answer(500, {"error": "boom"})
    incident = await open_incident(client, keys)
    for _ in range(10):
        await services.notifications.run_due()
        clock.advance(minutes=11)
    [failed] = await notifications(client, keys, incident_id=incident["id"])
    assert (failed["status"], failed["attempts"]) == ("failed", 6)
    assert len(on(peer, "/hook")) == 6


async def test_an_unreachable_channel_does_not_hold_up_the_api(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer
) -> None:
    peer.stop()  # the channel's host is gone: connections are refused
    incident = await open_incident(client, keys)  # answered without touching the channel
    await services.notifications.run_due()
    [pending] = await notifications(client, keys, incident_id=incident["id"])
    assert pending["status"] == "pending"
    assert "could not be reached" in pending["last_error"]
    assert "127.0.0.1" not in pending["last_error"]


async def test_repeated_signals_are_throttled_until_the_incident_moves(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer, clock: FakeClock
) -> None:
    event = {
        "kind": "alert_firing",
        "title": "checkout latency high",
        "severity": "SEV3",
        "labels": {"alertname": "CheckoutLatency", "service": "checkout"},
    }
    for n in range(3):
        headers = {**keys.of("developer"), "Idempotency-Key": f"latency-{n}"}
        assert (await client.post("/api/v1/events", json=event, headers=headers)).status_code == 202
        await services.processor.run_due()
        await services.notifications.run_due()
        clock.advance(seconds=10)
    listed = await notifications(client, keys)
    by_status = sorted((n["event"], n["status"]) for n in listed)
    assert by_status == [
        ("incident.opened", "sent"),
        ("incident.updated", "throttled"),
        ("incident.updated", "throttled"),
    ]
    incident_id = listed[0]["incident_id"]
    # A state change notifies at once, inside the interval.
    await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=keys.of("developer"))
    await services.notifications.run_due()

    async def signal(key: str) -> tuple[str, str]:
        headers = {**keys.of("developer"), "Idempotency-Key": key}
        await client.post("/api/v1/events", json=event, headers=headers)
        await services.processor.run_due()
        await services.notifications.run_due()
        newest = (await notifications(client, keys))[0]
        return newest["event"], newest["status"]

    assert await signal("latency-3") == ("incident.updated", "throttled")
    clock.advance(minutes=6)  # the interval has passed since the acknowledgement was sent
    assert await signal("latency-4") == ("incident.updated", "sent")
    events = [Webhook(WEBHOOK_SECRET).verify(g.body, g.headers)["type"] for g in on(peer, "/hook")]
    assert events == ["incident.opened", "incident.acknowledged", "incident.updated"]


async def test_channel_secrets_are_masked_in_the_api(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    await open_incident(client, keys, severity="SEV1")
    await services.notifications.run_due()
    response = await client.get("/api/v1/notifications", headers=keys.of("admin"))
    text = response.text
    assert TEAMS_SECRET_PATH.split("/")[1] not in text
    assert "0f1e2d3c4b5a69788796a5b4c3d2e1f0" not in text
    assert PAGERDUTY_KEY not in text
    targets = {n["channel"]: n["target"] for n in response.json()["items"]}
    assert targets["teams"].startswith("http://127.0.0.1:")
    assert "/webhookb2/***" in targets["teams"]
    assert targets["pager"] == f"pagerduty routing key ***{PAGERDUTY_KEY[-4:]}"


async def test_pagerduty_follows_the_incident_with_its_id_as_dedup_key(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer
) -> None:
    peer.responder = lambda got: Answer(
        202,
        {"status": "success", "message": "Event processed", "dedup_key": got.json()["dedup_key"]},
    )
    incident = await open_incident(
        client, keys, severity="SEV1", repo="acme/shop", url="https://ci.example.com/run/1"
    )
    path = f"/api/v1/incidents/{incident['id']}"
    await services.notifications.run_due()
    await client.post(f"{path}/acknowledge", headers=keys.of("developer"))
    await services.notifications.run_due()
    await client.post(f"{path}/resolve", json={"note": "rolled back"}, headers=keys.of("developer"))
    await services.notifications.run_due()
    events = [got.json() for got in on(peer, "/v2/enqueue")]
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {incident["id"]}
    assert {e["routing_key"] for e in events} == {PAGERDUTY_KEY}
    trigger = events[0]["payload"]
    assert trigger["severity"] == "critical"
    assert trigger["source"] == "acme/shop"
    assert "checkout 500s" in trigger["summary"]
    assert events[0]["links"] == [
        {"href": "https://ci.example.com/run/1", "text": "Open in the source"}
    ]
    assert "payload" not in events[1]


async def test_teams_gets_an_adaptive_card(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer
) -> None:
    await open_incident(client, keys, severity="SEV1", repo="acme/shop")
    await services.notifications.run_due()
    [got] = on(peer, f"/{TEAMS_SECRET_PATH}")
    message = got.json()
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Severity"] == "SEV1"
    assert facts["Repository"] == "acme/shop"


async def test_slack_message_is_posted_once_and_updated_in_place_as_the_decision_moves(
    client: httpx.AsyncClient, services: Services, keys: Keys, slack_api: HttpPeer
) -> None:
    incident = await open_incident(client, keys, severity="SEV1", environment="production")
    await services.notifications.run_due()
    [posted] = FakeSlack.calls(slack_api.received, "chat.postMessage")
    assert posted["channel"] == "C0CA5"
    assert posted["blocks"][0]["type"] == "header"
    proposed = await client.post(
        "/api/v1/decisions",
        json={
            "incident_id": incident["id"],
            "action": "rollback_deployment",
            "title": "roll back checkout",
        },
        headers=keys.of("developer"),
    )
    decision = proposed.json()
    assert decision["status"] == "pending_approval"
    await services.notifications.run_due()
    [pending] = FakeSlack.calls(slack_api.received, "chat.update")
    assert pending["channel"] == "C0CA5"
    assert pending["ts"] == "1700000000.000100"
    [actions] = [b for b in pending["blocks"] if b["type"] == "actions"]
    buttons = actions["elements"]
    assert [b["value"] for b in buttons] == [decision["id"], decision["id"]]
    for who in ("approver", "approver2"):
        verdict = await client.post(
            f"/api/v1/decisions/{decision['id']}/approve",
            json={"justification": "rollback is safe"},
            headers=keys.of(who),
        )
        assert verdict.status_code == 200, verdict.text
    await services.notifications.run_due()
    updates = FakeSlack.calls(slack_api.received, "chat.update")
    assert len(updates) == 3
    assert {u["ts"] for u in updates} == {"1700000000.000100"}
    assert len(FakeSlack.calls(slack_api.received, "chat.postMessage")) == 1
    final = updates[-1]
    assert not [b for b in final["blocks"] if b["type"] == "actions"]
    assert "approver2" in str(final["blocks"])
    assert "approved" in final["text"].lower()


async def test_approvers_are_reminded_then_escalated_before_a_decision_expires(
    client: httpx.AsyncClient, services: Services, keys: Keys, peer: HttpPeer, clock: FakeClock
) -> None:
    incident = await open_incident(client, keys, severity="SEV3", environment="production")
    proposed = await client.post(
        "/api/v1/decisions",
        json={"incident_id": incident["id"], "action": "rollback_deployment", "title": "roll back"},
        headers=keys.of("developer"),
    )
    assert proposed.json()["status"] == "pending_approval"
    await services.notifications.run_due()
    clock.advance(hours=23, minutes=40)  # 20 minutes left of 24 h: nothing yet
    await services.notifications.run_due()
    clock.advance(minutes=6)  # 14 minutes left: a reminder, once
    await services.notifications.run_due()
    await services.notifications.run_due()
    clock.advance(minutes=10)  # 4 minutes left: escalation to the next route
    await services.notifications.run_due()
    listed = await notifications(client, keys, incident_id=incident["id"])
    seen = sorted((n["event"], n["route"]) for n in listed)
    assert seen == [
        ("decision.escalated", "managers"),
        ("decision.pending_approval", "default"),
        ("decision.reminder", "default"),
        ("incident.opened", "default"),
    ]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture
def debug_logging() -> Iterator[Records]:
    """Dragon's logging configured at debug, with every standard-library record kept."""
    names = ("", "httpx", "httpcore")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level) for n in names}
    configure_logging(level="debug", fmt="json")
    records = Records()
    logging.getLogger().addHandler(records)
    yield records
    structlog.reset_defaults()
    for name, (handlers, level) in saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).setLevel(level)


async def test_channel_urls_never_reach_the_logs_even_at_debug(
    peer: HttpPeer, debug_logging: Records
) -> None:
    # The channels' own client: httpx logs every request URL at INFO unless Dragon stops it.
    url = f"{peer.url}/{TEAMS_SECRET_PATH}"
    async with httpx.AsyncClient() as http:
        await http.post(url, json={"type": "message"})
    assert on(peer, f"/{TEAMS_SECRET_PATH}")
    logged = "\n".join(debug_logging.lines)
    assert "0f1e2d3c4b5a69788796a5b4c3d2e1f0" not in logged
    assert "IncomingWebhook" not in logged


async def test_a_run_that_did_not_help_is_escalated_to_the_next_route(
    client: httpx.AsyncClient, app: FastAPI, services: Services, keys: Keys, clock: FakeClock
) -> None:
    incident = await open_incident(client, keys, severity="SEV3")
    async with SqlUnitOfWorkFactory(app.state.database)() as uow:  # as the execution engine
        found = await uow.incidents.get(incident["id"])
        await notify(
            uow,
            event="run.did_not_help",
            now=clock(),
            incident=found,
            details={"run_id": "run_1"},
            escalate=True,
        )
        await uow.commit()
    await services.notifications.run_due()
    listed = await notifications(client, keys, incident_id=incident["id"])
    assert sorted((n["event"], n["route"]) for n in listed) == [
        ("incident.opened", "default"),
        ("run.did_not_help", "managers"),
    ]


async def test_slack_threads_a_decision_without_incident_on_its_own_message(
    settings: Settings, clock: FakeClock, tmp_path: Path, peer: HttpPeer, slack_api: HttpPeer
) -> None:
    only_slack = notify_settings(
        settings,
        tmp_path=tmp_path,
        peer_url=peer.url,
        slack_url=slack_api.url,
        routes=[{"name": "default", "default": True, "channels": ["ops-slack"]}],
    )
    app = create_app(only_slack, clock=clock)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await app_ready(app)
        services: Services = app.state.services
        developer = await services.auth.create_key(SYSTEM_CALLER, name="dev", role=Role.DEVELOPER)
        approver = await services.auth.create_key(SYSTEM_CALLER, name="amy", role=Role.APPROVER)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            proposed = await http.post(
                "/api/v1/decisions",
                json={
                    "action": "rollback_deployment",
                    "title": "roll back",
                    "environment": "production",
                },
                headers={"Authorization": f"Bearer {developer.secret}"},
            )
            decision = proposed.json()
            assert decision["status"] == "pending_approval", decision
            await services.notifications.run_due()
            await http.post(
                f"/api/v1/decisions/{decision['id']}/reject",
                json={"justification": "not now"},
                headers={"Authorization": f"Bearer {approver.secret}"},
            )
            await services.notifications.run_due()
    [posted] = FakeSlack.calls(slack_api.received, "chat.postMessage")
    [updated] = FakeSlack.calls(slack_api.received, "chat.update")
    assert updated["ts"] == "1700000000.000100"
    assert "rejected" in updated["text"].lower()
    assert posted["blocks"] != updated["blocks"]
