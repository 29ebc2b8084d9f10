"""The channel registry: a routing document's `channels` entries become adapters by `type`,
through this explicit table (never by building module names from configuration)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dragon.domain.errors import ValidationFailed
from dragon.domain.ports import NotificationChannel
from dragon.integrations.mail import EmailChannel, SmtpServer
from dragon.integrations.outbound_webhook import WebhookChannel
from dragon.integrations.pagerduty import EVENTS_URL, PagerDutyChannel
from dragon.integrations.slack import SlackChannel, SlackClient
from dragon.integrations.teams import TeamsChannel


def _need(name: str, spec: Mapping[str, Any], key: str) -> Any:
    value = spec.get(key)
    if value in (None, "", []):
        raise ValidationFailed(
            f"notification channel {name}: `{key}` is required",
            code="notification_config_invalid",
        )
    return value


def _slack(
    name: str, spec: Mapping[str, Any], http: httpx.AsyncClient, slack: SlackClient | None
) -> NotificationChannel:
    if slack is None:
        raise ValidationFailed(
            f"notification channel {name}: Slack channels need DRAGON_SLACK_BOT_TOKEN",
            code="notification_config_invalid",
        )
    return SlackChannel(name, slack, channel=str(_need(name, spec, "channel")))


def _teams(
    name: str, spec: Mapping[str, Any], http: httpx.AsyncClient, slack: SlackClient | None
) -> NotificationChannel:
    return TeamsChannel(name, http, url=str(_need(name, spec, "url")))


def _pagerduty(
    name: str, spec: Mapping[str, Any], http: httpx.AsyncClient, slack: SlackClient | None
) -> NotificationChannel:
    return PagerDutyChannel(
        name,
        http,
        routing_key=str(_need(name, spec, "routing_key")),
        url=str(spec.get("url") or EVENTS_URL),
    )


def _webhook(
    name: str, spec: Mapping[str, Any], http: httpx.AsyncClient, slack: SlackClient | None
) -> NotificationChannel:
    return WebhookChannel(
        name, http, url=str(_need(name, spec, "url")), secret=str(_need(name, spec, "secret"))
    )


def _email(
    name: str, spec: Mapping[str, Any], http: httpx.AsyncClient, slack: SlackClient | None
) -> NotificationChannel:
    to = _need(name, spec, "to")
    server = SmtpServer(
        host=str(_need(name, spec, "host")),
        port=int(spec.get("port", 587)),
        username=spec.get("username"),
        password=spec.get("password"),
        starttls=bool(spec.get("starttls", True)),
        ca_file=spec.get("ca_file"),
    )
    return EmailChannel(
        name,
        server=server,
        sender=str(_need(name, spec, "sender")),
        to=[to] if isinstance(to, str) else [str(t) for t in to],
    )


Factory = Callable[
    [str, Mapping[str, Any], httpx.AsyncClient, SlackClient | None], NotificationChannel
]
FACTORIES: dict[str, Factory] = {
    "slack": _slack,
    "teams": _teams,
    "pagerduty": _pagerduty,
    "webhook": _webhook,
    "email": _email,
}


def build_channels(
    specs: Mapping[str, Mapping[str, Any]],
    *,
    http: httpx.AsyncClient,
    slack: SlackClient | None,
) -> dict[str, NotificationChannel]:
    return {name: FACTORIES[spec["type"]](name, spec, http, slack) for name, spec in specs.items()}
