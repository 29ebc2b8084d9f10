"""Notification routing from configuration: ordered routes match an incident by severity,
source, repository and labels and name the channels to tell; the first match wins, then the
default route. A route may name the route to escalate to (otherwise the next one in order).

    channels:
      ops-slack: {type: slack, channel: C0123456}
      sre-pager: {type: pagerduty, routing_key: ...}
    routes:
      - name: production-sev1
        match: {severity: [SEV1], labels: {env: production}}
        channels: [sre-pager, ops-slack]
        escalate_to: managers
      - name: default
        default: true
        channels: [ops-slack]
    throttle_seconds: 300
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dragon.domain.errors import ValidationFailed
from dragon.domain.notifications import IncidentBrief

CHANNEL_TYPES = frozenset({"slack", "teams", "email", "pagerduty", "webhook"})
_MATCH_KEYS = frozenset({"severity", "source", "repo", "labels"})


@dataclass(frozen=True, kw_only=True)
class Route:
    name: str
    channels: tuple[str, ...]
    severities: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    repos: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)
    default: bool = False
    escalate_to: str | None = None

    def matches(self, incident: IncidentBrief | None) -> bool:
        if incident is None:
            return not (self.severities or self.sources or self.repos or self.labels)
        return (
            (not self.severities or incident.severity in self.severities)
            and (not self.sources or incident.source in self.sources)
            and (not self.repos or (incident.repo or "") in self.repos)
            and all(incident.labels.get(k) == v for k, v in self.labels.items())
        )


@dataclass(frozen=True, kw_only=True)
class RoutingTable:
    routes: tuple[Route, ...] = ()
    channels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    throttle: timedelta = timedelta(minutes=5)

    def route_for(self, incident: IncidentBrief | None) -> Route | None:
        for route in self.routes:
            if not route.default and route.matches(incident):
                return route
        return next((r for r in self.routes if r.default), None)

    def escalation_of(self, route: Route) -> Route | None:
        if route.escalate_to:
            return next((r for r in self.routes if r.name == route.escalate_to), None)
        names = [r.name for r in self.routes]
        position = names.index(route.name)
        return self.routes[position + 1] if position + 1 < len(self.routes) else None


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(f"notification routing: {message}", code="notification_config_invalid")


def _strings(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise _invalid(f"{where} must be a string or a list of strings")


def _route(raw: Any, index: int, channels: Mapping[str, Any]) -> Route:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _invalid(f"routes[{index}] needs a name")
    name = raw["name"]
    match = raw.get("match") or {}
    if not isinstance(match, dict) or set(match) - _MATCH_KEYS:
        raise _invalid(f"route {name}: match takes only {sorted(_MATCH_KEYS)}")
    labels = match.get("labels") or {}
    if not isinstance(labels, dict):
        raise _invalid(f"route {name}: match.labels must be a mapping")
    names = raw.get("channels") or []
    if not isinstance(names, list) or not names:
        raise _invalid(f"route {name}: channels must be a non-empty list")
    unknown = [c for c in names if c not in channels]
    if unknown:
        raise _invalid(f"route {name}: unknown channels {unknown}")
    return Route(
        name=name,
        channels=tuple(names),
        severities=_strings(match.get("severity"), f"route {name}: match.severity"),
        sources=_strings(match.get("source"), f"route {name}: match.source"),
        repos=_strings(match.get("repo"), f"route {name}: match.repo"),
        labels={str(k): str(v) for k, v in labels.items()},
        default=bool(raw.get("default", False)),
        escalate_to=raw.get("escalate_to"),
    )


def parse_routing(document: Any) -> RoutingTable:
    """Validate a routing document (parsed YAML or JSON); raises notification_config_invalid."""
    if document is None:
        return RoutingTable()
    if not isinstance(document, dict):
        raise _invalid("the document must be a mapping with channels and routes")
    channels = document.get("channels") or {}
    if not isinstance(channels, dict):
        raise _invalid("channels must be a mapping of name to settings")
    for name, spec in channels.items():
        if not isinstance(spec, dict) or spec.get("type") not in CHANNEL_TYPES:
            raise _invalid(f"channel {name}: type must be one of {sorted(CHANNEL_TYPES)}")
    raw_routes = document.get("routes") or []
    if not isinstance(raw_routes, list):
        raise _invalid("routes must be a list")
    routes = tuple(_route(raw, i, channels) for i, raw in enumerate(raw_routes))
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise _invalid("route names must be unique")
    for route in routes:
        if route.escalate_to and route.escalate_to not in names:
            raise _invalid(f"route {route.name}: escalate_to names no route")
    throttle = document.get("throttle_seconds", 300)
    if not isinstance(throttle, int | float) or throttle < 0:
        raise _invalid("throttle_seconds must be a number of seconds")
    return RoutingTable(
        routes=routes,
        channels={str(k): dict(v) for k, v in channels.items()},
        throttle=timedelta(seconds=throttle),
    )
