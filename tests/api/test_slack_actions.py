"""Approving from Slack: the interactivity endpoint refuses anything not signed by Slack, maps
the Slack user to a Dragon principal by email, and applies the same rules as the API (roles,
separation of duties, quorum, audit with via=slack). Refused and unknown users are told
privately, and every attempt is audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from dragon.domain.enums import Role
from dragon.integrations import slack
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Settings
from tests.conftest import FakeClock, Keys
from tests.notify_setup import SLACK_SIGNING_SECRET, notify_settings
from tests.peers import HttpPeer, running_peer
from tests.slack_peer import FakeSlack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
ROUTE = "/integrations/slack/actions"


@pytest.fixture
def fake_slack() -> FakeSlack:
    return FakeSlack()


@pytest.fixture
def slack_api(fake_slack: FakeSlack) -> Iterator[HttpPeer]:
    yield from running_peer(fake_slack)


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    yield from running_peer()


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, peer: HttpPeer, slack_api: HttpPeer) -> Settings:
    return notify_settings(settings, tmp_path=tmp_path, peer_url=peer.url, slack_url=slack_api.url)


def press(decision_id: str, *, user_id: str, action_id: str = "dragon_approve") -> bytes:
    payload: dict[str, Any] = json.loads((FIXTURES / "block_actions.button.json").read_text())
    payload["user"]["id"] = user_id
    payload["actions"][0]["value"] = decision_id
    payload["actions"][0]["action_id"] = action_id
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, *, at: float, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    timestamp = str(int(at))
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": slack.signature(secret, timestamp, body),
    }


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(ROUTE, content=body, headers=headers)


@pytest.fixture
async def people(services: Services, fake_slack: FakeSlack) -> dict[str, str]:
    """Dragon principals with emails, and the Slack users whose profiles carry them."""
    slack_users = {}
    for name, role, slack_id in (
        ("alice", Role.APPROVER, "UALICE"),
        ("bob", Role.APPROVER, "UBOB"),
        ("vera", Role.VIEWER, "UVERA"),
    ):
        issued = await services.auth.create_key(
            SYSTEM_CALLER, name=name, role=role, email=f"{name}@example.com"
        )
        fake_slack.emails[slack_id] = f"{name.upper()}@Example.com"  # matched case-insensitively
        slack_users[name] = issued.secret
    fake_slack.emails["USTRANGER"] = "stranger@elsewhere.example"
    return slack_users


async def pending_decision(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/decisions",
        json={
            "action": "rollback_deployment",
            "title": "roll back checkout",
            "environment": "production",
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    assert decision["status"] == "pending_approval"
    return decision


async def audit_of(client: httpx.AsyncClient, keys: Keys, decision_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/audit", params={"target_id": decision_id}, headers=keys.of("admin")
    )
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_approvals_from_slack_follow_the_api_rules_to_quorum(
    client: httpx.AsyncClient, keys: Keys, people: dict[str, str], clock: FakeClock
) -> None:
    decision = await pending_decision(client, keys.developer)
    now = clock().timestamp()
    for user in ("UALICE", "UBOB"):
        body = press(decision["id"], user_id=user)
        response = await post(client, body, signed(body, at=now))
        assert response.status_code == 200, response.text
        assert response.json()["response_type"] == "ephemeral"
        assert response.json()["dragon"]["accepted"] is True
    read = await client.get(f"/api/v1/decisions/{decision['id']}", headers=keys.of("viewer"))
    assert read.json()["status"] == "approved"
    assert [(a["principal_name"], a["via"]) for a in read.json()["approvals"]] == [
        ("alice", "slack"),
        ("bob", "slack"),
    ]
    events = await audit_of(client, keys, decision["id"])
    approvals = [e for e in events if e["action"] == "approval.approved"]
    assert [e["details"]["via"] for e in approvals] == ["slack", "slack"]
    assert "decision.approved" in [e["action"] for e in events]


async def test_the_proposer_cannot_approve_from_slack(
    client: httpx.AsyncClient,
    keys: Keys,
    people: dict[str, str],
    clock: FakeClock,
    slack_api: HttpPeer,
) -> None:
    decision = await pending_decision(client, people["alice"])  # alice proposes
    body = press(decision["id"], user_id="UALICE")  # ...then presses Approve herself
    response = await post(client, body, signed(body, at=clock().timestamp()))
    assert response.status_code == 200
    assert response.json()["dragon"] == {"accepted": False, "code": "separation_of_duties"}
    read = await client.get(f"/api/v1/decisions/{decision['id']}", headers=keys.of("viewer"))
    assert (read.json()["status"], read.json()["approvals"]) == ("pending_approval", [])
    [refused] = [
        e for e in await audit_of(client, keys, decision["id"]) if e["action"] == "approval.refused"
    ]
    assert refused["actor_name"] == "alice"
    assert refused["details"]["code"] == "separation_of_duties"
    assert refused["details"]["via"] == "slack"
    [ephemeral] = FakeSlack.calls(slack_api.received, "chat.postEphemeral")
    assert (ephemeral["channel"], ephemeral["user"]) == ("C0CA5", "UALICE")
    assert "proposer" in ephemeral["text"]


async def test_an_unknown_slack_user_is_told_and_the_attempt_audited(
    client: httpx.AsyncClient,
    keys: Keys,
    people: dict[str, str],
    clock: FakeClock,
    slack_api: HttpPeer,
) -> None:
    decision = await pending_decision(client, keys.developer)
    for user in ("USTRANGER", "UNOPROFILE"):
        body = press(decision["id"], user_id=user)
        response = await post(client, body, signed(body, at=clock().timestamp()))
        assert response.status_code == 200
        assert response.json()["dragon"] == {"accepted": False, "code": "chat_user_unknown"}
    refusals = [
        e for e in await audit_of(client, keys, decision["id"]) if e["action"] == "approval.refused"
    ]
    assert sorted(e["actor_id"] for e in refusals) == ["slack:UNOPROFILE", "slack:USTRANGER"]
    assert {e["details"]["via"] for e in refusals} == {"slack"}
    assert len(FakeSlack.calls(slack_api.received, "chat.postEphemeral")) == 2
    read = await client.get(f"/api/v1/decisions/{decision['id']}", headers=keys.of("viewer"))
    assert read.json()["approvals"] == []


async def test_a_viewer_cannot_approve_from_slack(
    client: httpx.AsyncClient, keys: Keys, people: dict[str, str], clock: FakeClock
) -> None:
    decision = await pending_decision(client, keys.developer)
    body = press(decision["id"], user_id="UVERA")
    response = await post(client, body, signed(body, at=clock().timestamp()))
    assert response.json()["dragon"] == {"accepted": False, "code": "role_insufficient"}
    refusals = [
        e for e in await audit_of(client, keys, decision["id"]) if e["action"] == "approval.refused"
    ]
    assert [e["actor_name"] for e in refusals] == ["vera"]


async def test_reject_from_slack_denies_the_decision(
    client: httpx.AsyncClient, keys: Keys, people: dict[str, str], clock: FakeClock
) -> None:
    decision = await pending_decision(client, keys.developer)
    body = press(decision["id"], user_id="UBOB", action_id="dragon_reject")
    response = await post(client, body, signed(body, at=clock().timestamp()))
    assert response.json()["dragon"]["accepted"] is True
    read = await client.get(f"/api/v1/decisions/{decision['id']}", headers=keys.of("viewer"))
    assert read.json()["status"] == "denied"
    assert read.json()["approvals"][0]["verdict"] == "reject"


async def test_replayed_tampered_and_unsigned_requests_are_refused(
    client: httpx.AsyncClient, keys: Keys, people: dict[str, str], clock: FakeClock
) -> None:
    decision = await pending_decision(client, keys.developer)
    body = press(decision["id"], user_id="UALICE")
    now = clock().timestamp()
    replayed = await post(client, body, signed(body, at=now - 301))
    assert (replayed.status_code, replayed.json()["code"]) == (401, "slack_timestamp_stale")
    tampered_body = press(decision["id"], user_id="UBOB")
    tampered = await post(client, tampered_body, signed(body, at=now))
    assert (tampered.status_code, tampered.json()["code"]) == (401, "slack_signature_invalid")
    other_app = await post(client, body, signed(body, at=now, secret="x" * 32))
    assert (other_app.status_code, other_app.json()["code"]) == (401, "slack_signature_invalid")
    unsigned = await post(client, body, {"content-type": "application/x-www-form-urlencoded"})
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "slack_signature_missing")
    # A Dragon API key is no Slack signature.
    with_key = await post(client, body, {"Authorization": f"Bearer {keys.admin}"})
    assert with_key.status_code == 401
    read = await client.get(f"/api/v1/decisions/{decision['id']}", headers=keys.of("viewer"))
    assert read.json()["approvals"] == []


async def test_a_signed_request_that_is_not_a_dragon_button_is_a_clear_4xx(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    body = b"payload=%7B%22type%22%3A%22view_submission%22%7D"
    response = await post(client, body, signed(body, at=clock().timestamp()))
    assert (response.status_code, response.json()["code"]) == (422, "slack_payload_invalid")
    garbage = b"\xff\xfe"
    response = await post(client, garbage, signed(garbage, at=clock().timestamp()))
    assert (response.status_code, response.json()["code"]) == (400, "slack_payload_invalid")
