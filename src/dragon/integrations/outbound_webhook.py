"""A generic outbound webhook: the notification as JSON, signed per the Standard Webhooks
specification (webhook-id, webhook-timestamp, webhook-signature: `v1,` base64 HMAC-SHA256 over
`id.timestamp.body` with a `whsec_` secret) by the `standardwebhooks` library."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from dragon.domain.notifications import Notice, mask_url
from dragon.integrations.vendor_http import post_json


def body_of(notice: Notice) -> dict[str, Any]:
    return {
        "type": notice.event,
        "timestamp": notice.occurred_at,
        "data": {
            "notification_id": notice.notification_id,
            "headline": notice.headline,
            "incident": asdict(notice.incident) if notice.incident else None,
            "decision": asdict(notice.decision) if notice.decision else None,
            "details": notice.details,
        },
    }


class WebhookChannel:
    kind = "webhook"

    def __init__(self, name: str, http: httpx.AsyncClient, *, url: str, secret: str) -> None:
        self.name = name
        self._http = http
        self._url = url
        self._signer = Webhook(secret)

    def target(self) -> str:
        return mask_url(self._url)

    def handles(self, event: str) -> bool:
        return True

    async def send(self, notice: Notice, *, thread: str | None) -> str | None:
        content = orjson.dumps(body_of(notice))
        # The notification id is the message id: a receiver deduplicates retries on it.
        message_id = notice.notification_id
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(message_id, now, content.decode()),
        }
        await post_json(self._http, self._url, vendor="webhook", content=content, headers=headers)
        return None
