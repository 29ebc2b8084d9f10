"""Slack: a Block Kit message per incident (updated in place with chat.update as its decision
moves), Approve/Reject buttons while a decision is pending, the signed interactivity requests
those buttons send, and the users.info / chat.postEphemeral calls approvals need.

Request signing: https://api.slack.com/authentication/verifying-requests-from-slack (v0 HMAC
over `v0:{timestamp}:{body}`, timestamp within five minutes). Block Kit and block_actions
payloads: https://api.slack.com/reference/interaction-payloads/block-actions.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import orjson

from dragon.domain.errors import Malformed, Unauthenticated, ValidationFailed
from dragon.domain.notifications import ChannelFailed, ChatAction, Notice
from dragon.integrations.vendor_http import post_json

API_URL = "https://slack.com/api"
MAX_SKEW_SECONDS = 300
APPROVE_ACTION = "dragon_approve"
REJECT_ACTION = "dragon_reject"
_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_SEVERITY_EMOJI = {"SEV1": ":red_circle:", "SEV2": ":large_orange_circle:"}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_request(
    *, headers: Mapping[str, str], body: bytes, secret: str | None, now: float
) -> None:
    """Refuse anything not signed by Slack with `secret` in the last five minutes."""
    if not secret:
        raise Unauthenticated(
            "Slack interactivity is off: DRAGON_SLACK_SIGNING_SECRET is not set",
            code="slack_signature_invalid",
        )
    timestamp = headers.get("x-slack-request-timestamp", "")
    given = headers.get("x-slack-signature", "")
    if not timestamp or not given:
        raise Unauthenticated(
            "X-Slack-Signature and X-Slack-Request-Timestamp are required",
            code="slack_signature_missing",
        )
    if not timestamp.isdigit() or abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Unauthenticated(
            "the request timestamp is more than five minutes away: refused as a replay",
            code="slack_timestamp_stale",
        )
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        raise Unauthenticated("the Slack signature does not match", code="slack_signature_invalid")


def parse_action(body: bytes) -> ChatAction:
    """A block_actions request (form field `payload`, JSON) carrying one Dragon button."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
        payload = orjson.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, orjson.JSONDecodeError):
        raise Malformed(
            "expected a form body with a JSON `payload` field", code="slack_payload_invalid"
        ) from None
    actions = payload.get("actions") if isinstance(payload, dict) else None
    if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        raise ValidationFailed("not a block_actions payload", code="slack_payload_invalid")
    action = actions[0]
    verdicts = {APPROVE_ACTION: "approve", REJECT_ACTION: "reject"}
    verdict = verdicts.get(action.get("action_id", ""))
    user = payload.get("user") or {}
    if verdict is None or not isinstance(action.get("value"), str) or not user.get("id"):
        raise ValidationFailed("not a Dragon approval button", code="slack_payload_invalid")
    channel = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get(
        "channel_id"
    )
    return ChatAction(
        decision_id=action["value"][:40],
        verdict=verdict,
        user_id=str(user["id"]),
        user_name=str(user.get("username") or user.get("name") or ""),
        email=user.get("email"),
        channel_id=channel,
    )


def _field(label: str, value: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def blocks(notice: Notice) -> list[dict[str, Any]]:
    """The message: headline, incident facts, the decision with risk and factors, buttons."""
    emoji = _SEVERITY_EMOJI.get(notice.incident.severity, "") if notice.incident else ""
    out: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{emoji} {notice.headline}".strip()[:150]},
        }
    ]
    if notice.incident:
        inc = notice.incident
        fields = [
            _field("Severity", inc.severity),
            _field("Status", inc.status),
            _field("Source", inc.source),
            _field("Signals", str(inc.signal_count)),
        ]
        if inc.repo:
            fields.append(
                _field("Repository", f"{inc.repo}" + (f" @ {inc.branch}" if inc.branch else ""))
            )
        if inc.url:
            fields.append(_field("Link", f"<{inc.url}|open>"))
        out.append({"type": "section", "fields": fields[:10]})
    if notice.decision:
        dec = notice.decision
        factors = "\n".join(
            f"• {f.get('name')} ({f.get('weight'):+d}) {f.get('detail', '')}".rstrip()
            for f in dec.risk_factors
            if isinstance(f.get("weight"), int)
        )
        text = (
            f"*Decision:* {dec.title} (`{dec.action}`)\n*Status:* {dec.status}\n"
            f"*Risk:* {dec.risk_level} ({dec.risk_score}/100)"
        )
        if factors:
            text += f"\n*Risk factors:*\n{factors}"
        if dec.rationale:
            text += f"\n*Why:* {dec.rationale[:500]}"
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
        if dec.pending:
            out.append(
                {
                    "type": "actions",
                    "block_id": f"decision:{dec.id}",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": APPROVE_ACTION,
                            "text": {"type": "plain_text", "text": "Approve"},
                            "style": "primary",
                            "value": dec.id,
                        },
                        {
                            "type": "button",
                            "action_id": REJECT_ACTION,
                            "text": {"type": "plain_text", "text": "Reject"},
                            "style": "danger",
                            "value": dec.id,
                        },
                    ],
                }
            )
    by = notice.details.get("by")
    if by:
        out.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"last change by {by}"}]}
        )
    return out


class SlackClient:
    """The Web API calls Dragon makes, with a bot token (xoxb-...)."""

    def __init__(self, http: httpx.AsyncClient, *, token: str, api_url: str = API_URL) -> None:
        self._http = http
        self._token = token
        self._api_url = api_url.rstrip("/")

    async def call(
        self, method: str, body: dict[str, Any], *, form: bool = False
    ) -> dict[str, Any]:
        """JSON for write methods; `form` for read methods such as users.info, which Slack
        accepts only form-encoded."""
        headers = {"Authorization": f"Bearer {self._token}"}
        content = None
        if form:
            content = urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = await post_json(
            self._http,
            f"{self._api_url}/{method}",
            vendor="slack",
            body=None if form else body,
            content=content,
            headers=headers,
        )
        answer: dict[str, Any] = response.json()
        if not answer.get("ok"):
            error = str(answer.get("error", "unknown_error"))
            raise ChannelFailed(
                f"slack {method} failed: {error}",
                retryable=error in _RETRYABLE_ERRORS,
                code="notification_channel_refused"
                if error not in _RETRYABLE_ERRORS
                else "notification_channel_unavailable",
            )
        return answer


class SlackChannel:
    kind = "slack"

    def __init__(self, name: str, client: SlackClient, *, channel: str) -> None:
        self.name = name
        self._client = client
        self._channel = channel

    def target(self) -> str:
        return f"slack channel {self._channel}"

    def handles(self, event: str) -> bool:
        return True

    async def send(self, notice: Notice, *, thread: str | None) -> str | None:
        body = {"text": notice.headline, "blocks": blocks(notice)}
        if thread:
            channel, _, ts = thread.partition(":")
            await self._client.call("chat.update", {"channel": channel, "ts": ts, **body})
            return thread
        answer = await self._client.call("chat.postMessage", {"channel": self._channel, **body})
        return f"{answer.get('channel', self._channel)}:{answer.get('ts', '')}"


class SlackDirectory:
    """ChatDirectory over the Web API: users.info for the email, chat.postEphemeral to reply."""

    def __init__(self, client: SlackClient | None) -> None:
        self._client = client

    async def email_of(self, user_id: str) -> str | None:
        if self._client is None:
            return None
        try:
            answer = await self._client.call("users.info", {"user": user_id}, form=True)
        except ChannelFailed:
            return None
        email = ((answer.get("user") or {}).get("profile") or {}).get("email")
        return str(email) if email else None

    async def tell(self, *, channel: str | None, user_id: str, text: str) -> None:
        if self._client is None or not channel:
            return
        await self._client.call(
            "chat.postEphemeral", {"channel": channel, "user": user_id, "text": text}
        )
