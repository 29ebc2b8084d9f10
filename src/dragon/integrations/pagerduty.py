"""PagerDuty Events API v2: trigger, acknowledge and resolve an alert that follows the
incident, deduplicated on the incident id.
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/"""

from __future__ import annotations

from typing import Any

import httpx

from dragon.domain.notifications import (
    DECISION_ESCALATED,
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_OPENED,
    INCIDENT_RESOLVED,
    Notice,
)
from dragon.integrations.vendor_http import post_json

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_ACTIONS = {
    INCIDENT_OPENED: "trigger",
    DECISION_ESCALATED: "trigger",
    INCIDENT_ACKNOWLEDGED: "acknowledge",
    INCIDENT_RESOLVED: "resolve",
}
_SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}


def event(notice: Notice, *, routing_key: str) -> dict[str, Any]:
    action = _ACTIONS[notice.event]
    incident = notice.incident
    dedup_key = incident.id if incident else (notice.decision.id if notice.decision else "")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
    }
    if action == "trigger":
        details: dict[str, Any] = {"event": notice.event}
        if incident:
            details |= {"repo": incident.repo, "branch": incident.branch, "status": incident.status}
            details |= {f"label:{k}": v for k, v in incident.labels.items()}
        if notice.decision:
            details |= {
                "decision": notice.decision.title,
                "decision_status": notice.decision.status,
                "risk": f"{notice.decision.risk_level} ({notice.decision.risk_score})",
            }
        body["payload"] = {
            "summary": notice.headline[:1024],
            "source": (incident.repo or incident.source) if incident else "dragon",
            "severity": _SEVERITY.get(incident.severity, "warning") if incident else "warning",
            "component": incident.environment if incident else None,
            "class": incident.source if incident else None,
            "custom_details": details,
        }
        if incident and incident.url:
            body["links"] = [{"href": incident.url, "text": "Open in the source"}]
    return body


class PagerDutyChannel:
    kind = "pagerduty"

    def __init__(
        self, name: str, http: httpx.AsyncClient, *, routing_key: str, url: str = EVENTS_URL
    ) -> None:
        self.name = name
        self._http = http
        self._routing_key = routing_key
        self._url = url

    def target(self) -> str:
        return f"pagerduty routing key ***{self._routing_key[-4:]}"

    def handles(self, event: str) -> bool:
        return event in _ACTIONS

    async def send(self, notice: Notice, *, thread: str | None) -> str | None:
        answer = await post_json(
            self._http,
            self._url,
            vendor="pagerduty",
            body=event(notice, routing_key=self._routing_key),
        )
        found = answer.json().get("dedup_key") if answer.content else None
        return str(found) if found else None
