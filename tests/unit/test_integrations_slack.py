"""Slack request signing against Slack's own worked example, and what replayed, tampered and
unsigned requests get; reading a block_actions payload; the Block Kit message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from dragon.domain.errors import DragonError, Unauthenticated
from dragon.domain.notifications import DecisionBrief, IncidentBrief, Notice
from dragon.integrations import slack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
# "Verifying requests from Slack", the worked example (tests/fixtures/slack/SOURCES.md).
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    b"collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F3977008"
    b"85554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c44"
    b"7fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
DOC_NOW = float(DOC_TIMESTAMP) + 30


def doc_headers(**changes: str) -> dict[str, str]:
    headers = {"x-slack-request-timestamp": DOC_TIMESTAMP, "x-slack-signature": DOC_SIGNATURE}
    headers.update(changes)
    return headers


def test_signature_reproduces_slacks_documented_example() -> None:
    assert slack.signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE


def test_slacks_documented_request_verifies() -> None:
    slack.verify_request(headers=doc_headers(), body=DOC_BODY, secret=DOC_SECRET, now=DOC_NOW)


def refusal(headers: dict[str, str], *, body: bytes = DOC_BODY, now: float = DOC_NOW) -> str:
    with pytest.raises(Unauthenticated) as refused:
        slack.verify_request(headers=headers, body=body, secret=DOC_SECRET, now=now)
    return refused.value.code


def test_a_replayed_request_six_minutes_later_is_refused() -> None:
    assert refusal(doc_headers(), now=float(DOC_TIMESTAMP) + 360) == "slack_timestamp_stale"


def test_a_request_from_the_future_is_refused() -> None:
    assert refusal(doc_headers(), now=float(DOC_TIMESTAMP) - 360) == "slack_timestamp_stale"


def test_a_tampered_body_is_refused() -> None:
    tampered = DOC_BODY.replace(b"user_id=U2CERLKJA", b"user_id=U2CERLKJB")
    assert refusal(doc_headers(), body=tampered) == "slack_signature_invalid"


def test_a_timestamp_moved_to_now_breaks_the_signature() -> None:
    moved = str(int(DOC_NOW))
    assert refusal(doc_headers(**{"x-slack-request-timestamp": moved})) == (
        "slack_signature_invalid"
    )


def test_unsigned_requests_are_refused() -> None:
    assert refusal({}) == "slack_signature_missing"
    assert refusal({"x-slack-request-timestamp": DOC_TIMESTAMP}) == "slack_signature_missing"


def test_another_apps_secret_does_not_verify() -> None:
    with pytest.raises(Unauthenticated) as refused:
        slack.verify_request(
            headers=doc_headers(), body=DOC_BODY, secret=DOC_SECRET[::-1], now=DOC_NOW
        )
    assert refused.value.code == "slack_signature_invalid"


def test_without_a_signing_secret_everything_is_refused() -> None:
    with pytest.raises(Unauthenticated) as refused:
        slack.verify_request(headers=doc_headers(), body=DOC_BODY, secret=None, now=DOC_NOW)
    assert refused.value.code == "slack_signature_invalid"


def form(payload: dict[str, object]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def button_payload(decision_id: str = "dec_1", action_id: str = "dragon_approve") -> Any:
    payload = json.loads((FIXTURES / "block_actions.button.json").read_text())
    payload["actions"][0]["value"] = decision_id
    payload["actions"][0]["action_id"] = action_id
    return payload


def test_a_button_press_is_read_from_the_payload() -> None:
    action = slack.parse_action(form(button_payload("dec_abc")))
    assert (action.decision_id, action.verdict) == ("dec_abc", "approve")
    assert (action.user_id, action.channel_id, action.user_name) == ("U0CA5", "C0CA5", "Amy McGee")
    reject = slack.parse_action(form(button_payload("dec_abc", "dragon_reject")))
    assert reject.verdict == "reject"


@pytest.mark.parametrize(
    "body",
    [
        b"not a form",
        b"payload=not-json",
        form({"type": "view_submission"}),
        form(button_payload(action_id="somebody_elses_button")),
    ],
)
def test_anything_but_a_dragon_button_is_refused(body: bytes) -> None:
    with pytest.raises(DragonError) as refused:
        slack.parse_action(body)
    assert refused.value.code == "slack_payload_invalid"


INCIDENT = IncidentBrief(
    id="inc_1", title="checkout 500s", severity="SEV1", status="open", source="alertmanager"
)


def decision(status: str) -> DecisionBrief:
    return DecisionBrief(
        id="dec_1",
        title="roll back checkout",
        action="rollback_deployment",
        status=status,
        risk_score=70,
        risk_level="high",
        risk_factors=[{"name": "production", "weight": 30, "detail": "targets production"}],
    )


def test_a_pending_decision_gets_approve_and_reject_buttons_with_its_risk() -> None:
    notice = Notice(
        event="decision.pending_approval",
        notification_id="ntf_1",
        occurred_at="2026-11-22T09:00:00+00:00",
        incident=INCIDENT,
        decision=decision("pending_approval"),
    )
    blocks = slack.blocks(notice)
    actions = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == ["dragon_approve", "dragon_reject"]
    assert {e["value"] for e in actions[0]["elements"]} == {"dec_1"}
    text = json.dumps(blocks)
    assert "high (70/100)" in text
    assert "production (+30) targets production" in text


def test_a_settled_decision_has_no_buttons() -> None:
    notice = Notice(
        event="decision.approved",
        notification_id="ntf_1",
        occurred_at="2026-11-22T09:00:00+00:00",
        incident=INCIDENT,
        decision=decision("approved"),
        details={"by": "alice"},
    )
    blocks = slack.blocks(notice)
    assert not [b for b in blocks if b["type"] == "actions"]
    assert "last change by alice" in json.dumps(blocks)
