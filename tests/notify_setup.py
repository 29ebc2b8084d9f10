"""Settings for notification tests: a routing file whose channels point at local peers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from dragon.settings import Settings
from tests.slack_peer import BOT_TOKEN

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLACK_SIGNING_SECRET = "e3b2c6a1f0d94e8b7a6c5d4e3f2a1b0c"
PAGERDUTY_KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL"
TEAMS_SECRET_PATH = (
    "webhookb2/5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d@9f8e7d6c/IncomingWebhook/"
    "0f1e2d3c4b5a69788796a5b4c3d2e1f0/7c6b5a49"
)


def routing(peer_url: str, **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "channels": {
            "hook": {"type": "webhook", "url": f"{peer_url}/hook", "secret": WEBHOOK_SECRET},
            "pager": {
                "type": "pagerduty",
                "url": f"{peer_url}/v2/enqueue",
                "routing_key": PAGERDUTY_KEY,
            },
            "teams": {"type": "teams", "url": f"{peer_url}/{TEAMS_SECRET_PATH}"},
            "ops-slack": {"type": "slack", "channel": "C0CA5"},
        },
        "routes": [
            {
                "name": "sev1",
                "match": {"severity": ["SEV1"]},
                "channels": ["pager", "ops-slack", "teams"],
                "escalate_to": "managers",
            },
            {"name": "managers", "match": {"labels": {"team": "managers"}}, "channels": ["hook"]},
            {
                "name": "default",
                "default": True,
                "channels": ["hook"],
                "escalate_to": "managers",
            },
        ],
        "throttle_seconds": 300,
    }
    document.update(extra)
    return document


def notify_settings(
    base: Settings, *, tmp_path: Path, peer_url: str, slack_url: str, **extra: Any
) -> Settings:
    path = tmp_path / "notifications.yaml"
    path.write_text(yaml.safe_dump(routing(peer_url, **extra)), encoding="utf-8")
    return base.model_copy(
        update={
            "notifications_file": str(path),
            "slack_bot_token": SecretStr(BOT_TOKEN),
            "slack_api_url": f"{slack_url}/api",
            "slack_signing_secret": SecretStr(SLACK_SIGNING_SECRET),
        }
    )
