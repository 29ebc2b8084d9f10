"""Part of app.py's wiring: the notification routing file, channels and Slack."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import httpx
import yaml

from dragon.domain.clock import Clock
from dragon.domain.errors import ValidationFailed
from dragon.domain.notification_routing import RoutingTable, parse_routing
from dragon.integrations import slack
from dragon.integrations.channels import build_channels
from dragon.services.container import NotifySettings
from dragon.services.notifications import DeliveryRules
from dragon.settings import Settings


def load_routing(settings: Settings) -> RoutingTable:
    """The notification routing file, validated; no file means no channels."""
    if not settings.notifications_file:
        return RoutingTable()
    path = Path(settings.notifications_file)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationFailed(
            f"DRAGON_NOTIFICATIONS_FILE cannot be read: {type(exc).__name__}",
            code="notification_config_invalid",
        ) from None
    return parse_routing(document)


def notify_settings(settings: Settings, *, clock: Clock) -> NotifySettings:
    routing = load_routing(settings)
    http = httpx.AsyncClient(timeout=settings.notification_timeout_seconds, follow_redirects=False)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    slack_client = (
        slack.SlackClient(http, token=token, api_url=settings.slack_api_url) if token else None
    )
    signing = settings.slack_signing_secret
    secret = signing.get_secret_value() if signing else None

    def verify_chat(*, headers: Mapping[str, str], body: bytes) -> None:
        slack.verify_request(headers=headers, body=body, secret=secret, now=clock().timestamp())

    return NotifySettings(
        routing=routing,
        channels=build_channels(routing.channels, http=http, slack=slack_client),
        rules=DeliveryRules(
            max_attempts=settings.notification_max_attempts,
            remind_before=timedelta(seconds=settings.approval_remind_before_seconds),
            escalate_before=timedelta(seconds=settings.approval_escalate_before_seconds),
        ),
        directory=slack.SlackDirectory(slack_client),
        verify_chat=verify_chat,
        parse_chat=slack.parse_action,
        close=http.aclose,
    )
