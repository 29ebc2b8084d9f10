"""Microsoft Teams: an Adaptive Card posted to an incoming webhook (or a Workflows webhook).
Card shape: https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
(`type: message` with one `application/vnd.microsoft.card.adaptive` attachment)."""

from __future__ import annotations

from typing import Any

import httpx

from dragon.domain.notifications import Notice, mask_url
from dragon.integrations.vendor_http import post_json

_COLOURS = {"SEV1": "attention", "SEV2": "warning"}


def _fact(title: str, value: str | None) -> dict[str, str] | None:
    return {"title": title, "value": value} if value else None


def card(notice: Notice) -> dict[str, Any]:
    facts: list[dict[str, str] | None] = []
    actions: list[dict[str, Any]] = []
    if notice.incident:
        inc = notice.incident
        facts += [
            _fact("Severity", inc.severity),
            _fact("Status", inc.status),
            _fact("Source", inc.source),
            _fact("Repository", inc.repo),
            _fact("Branch", inc.branch),
        ]
        if inc.url:
            actions.append({"type": "Action.OpenUrl", "title": "Open", "url": inc.url})
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": notice.headline,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": _COLOURS.get(notice.incident.severity, "default")
            if notice.incident
            else "default",
        },
    ]
    if notice.decision:
        dec = notice.decision
        facts += [
            _fact("Decision", f"{dec.title} ({dec.action})"),
            _fact("Decision status", dec.status),
            _fact("Risk", f"{dec.risk_level} ({dec.risk_score}/100)"),
        ]
        for factor in dec.risk_factors[:8]:
            facts.append(
                _fact(
                    f"Risk factor: {factor.get('name')}",
                    str(factor.get("detail") or factor.get("weight")),
                )
            )
    body.append({"type": "FactSet", "facts": [f for f in facts if f]})
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if actions:
        content["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": content,
            }
        ],
    }


class TeamsChannel:
    kind = "teams"

    def __init__(self, name: str, http: httpx.AsyncClient, *, url: str) -> None:
        self.name = name
        self._http = http
        self._url = url

    def target(self) -> str:
        return mask_url(self._url)

    def handles(self, event: str) -> bool:
        return True

    async def send(self, notice: Notice, *, thread: str | None) -> str | None:
        await post_json(self._http, self._url, vendor="teams", body=card(notice))
        return None
