"""The channel registry turns a routing file's channels into adapters, and refuses bad ones by
name without echoing their values (they are secrets)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dragon.domain.errors import ValidationFailed
from dragon.integrations.channels import build_channels
from dragon.integrations.slack import SlackClient

HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_each_type_becomes_its_adapter() -> None:
    async with httpx.AsyncClient() as http:
        channels = build_channels(
            {
                "s": {"type": "slack", "channel": "C1"},
                "t": {"type": "teams", "url": "https://example.webhook.office.com/x"},
                "p": {"type": "pagerduty", "routing_key": "R0UT1NGKEY"},
                "w": {
                    "type": "webhook",
                    "url": "https://hooks.example.com/in",
                    "secret": HOOK_SECRET,
                },
                "e": {"type": "email", "host": "smtp.example.com", "sender": "a@b", "to": "c@d"},
            },
            http=http,
            slack=SlackClient(http, token="xoxb-1"),
        )
    assert {name: c.kind for name, c in channels.items()} == {
        "s": "slack",
        "t": "teams",
        "p": "pagerduty",
        "w": "webhook",
        "e": "email",
    }
    assert channels["p"].handles("incident.opened")
    assert not channels["p"].handles("decision.approved")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "slack", "channel": "C1"}, "DRAGON_SLACK_BOT_TOKEN"),
        ({"type": "teams"}, "`url` is required"),
        (
            {"type": "webhook", "url": "https://h.example.com", "secret": "not base64 !"},
            "malformed",
        ),
        ({"type": "email", "host": "h", "sender": "a@b", "to": "c@d", "port": "smtp"}, "malformed"),
    ],
)
async def test_a_bad_channel_is_refused_by_name(spec: dict[str, Any], message: str) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ValidationFailed, match=message) as refused:
            build_channels({"broken": spec}, http=http, slack=None)
    assert refused.value.code == "notification_config_invalid"
    assert "broken" in refused.value.message
    assert "not base64" not in refused.value.message
