"""The rules of notification delivery: routing by severity, source, repository and labels with
a default route and escalation; throttling; retry delays honouring Retry-After; masking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dragon.domain.errors import ValidationFailed
from dragon.domain.notification_routing import parse_routing
from dragon.domain.notifications import (
    IncidentBrief,
    is_throttled,
    mask_url,
    parse_retry_after,
    retry_delay,
)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
DOCUMENT = {
    "channels": {
        "pager": {"type": "pagerduty", "routing_key": "k"},
        "slack": {"type": "slack", "channel": "C1"},
        "mail": {"type": "email", "host": "h", "sender": "a@b", "to": ["c@d"]},
        "hook": {"type": "webhook", "url": "http://x", "secret": "whsec_eA=="},
    },
    "routes": [
        {
            "name": "prod-sev1",
            "match": {"severity": ["SEV1"], "labels": {"env": "production"}},
            "channels": ["pager", "slack"],
            "escalate_to": "managers",
        },
        {"name": "shop", "match": {"repo": "acme/shop", "source": "github"}, "channels": ["hook"]},
        {"name": "managers", "match": {"severity": "SEV1"}, "channels": ["mail"]},
        {"name": "default", "default": True, "channels": ["slack"]},
    ],
    "throttle_seconds": 120,
}


def incident(**changes: object) -> IncidentBrief:
    values: dict[str, object] = {
        "id": "inc_1",
        "title": "t",
        "severity": "SEV3",
        "status": "open",
        "source": "alertmanager",
    }
    values.update(changes)
    return IncidentBrief(**values)  # type: ignore[arg-type]


def test_the_first_matching_route_wins_and_the_default_catches_the_rest() -> None:
    table = parse_routing(DOCUMENT)
    prod = incident(severity="SEV1", labels={"env": "production"})
    assert table.route_for(prod).name == "prod-sev1"  # type: ignore[union-attr]
    assert table.route_for(incident(severity="SEV1")).name == "managers"  # type: ignore[union-attr]
    shop = incident(repo="acme/shop", source="github")
    assert table.route_for(shop).name == "shop"  # type: ignore[union-attr]
    other_source = incident(repo="acme/shop", source="gitlab")
    assert table.route_for(other_source).name == "default"  # type: ignore[union-attr]
    assert table.route_for(None).name == "default"  # type: ignore[union-attr]
    assert table.throttle == timedelta(seconds=120)


def test_escalation_goes_to_the_named_route_or_else_the_next_one() -> None:
    table = parse_routing(DOCUMENT)
    by_name = {r.name: r for r in table.routes}
    assert table.escalation_of(by_name["prod-sev1"]).name == "managers"  # type: ignore[union-attr]
    assert table.escalation_of(by_name["shop"]).name == "managers"  # type: ignore[union-attr]
    assert table.escalation_of(by_name["default"]) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channels": {"x": {"type": "carrier-pigeon"}}}, "type must be one of"),
        ({"routes": [{"name": "r", "channels": ["nowhere"]}]}, "unknown channels"),
        ({"routes": [{"name": "r", "channels": []}]}, "non-empty"),
        ({"routes": [{"name": "r", "channels": ["slack"], "match": {"colour": "red"}}]}, "match"),
        (
            {"routes": [{"name": "r", "channels": ["slack"], "escalate_to": "nobody"}]},
            "escalate_to",
        ),
        ({"throttle_seconds": -1}, "throttle_seconds"),
    ],
)
def test_a_bad_routing_document_is_refused_with_the_reason(
    change: dict[str, object], message: str
) -> None:
    document = {**DOCUMENT, **change}
    with pytest.raises(ValidationFailed, match=message) as refused:
        parse_routing(document)
    assert refused.value.code == "notification_config_invalid"


def test_the_same_state_inside_the_interval_is_throttled_and_a_new_state_is_not() -> None:
    interval = timedelta(minutes=5)
    last = NOW - timedelta(minutes=2)
    kw = {"last_sent_at": last, "now": NOW, "interval": interval}
    assert is_throttled(last_state="open/-/-", state="open/-/-", **kw)  # type: ignore[arg-type]
    assert not is_throttled(last_state="open/-/-", state="acknowledged/-/-", **kw)  # type: ignore[arg-type]
    assert not is_throttled(
        last_sent_at=NOW - timedelta(minutes=6),
        last_state="open/-/-",
        state="open/-/-",
        now=NOW,
        interval=interval,
    )
    assert not is_throttled(
        last_sent_at=None, last_state=None, state="open/-/-", now=NOW, interval=interval
    )


def test_retry_delays_grow_and_are_capped() -> None:
    delays = [retry_delay(n, retry_after=None) for n in range(1, 12)]
    assert delays[:3] == [timedelta(seconds=2), timedelta(seconds=4), timedelta(seconds=8)]
    assert delays == sorted(delays)
    assert delays[-1] == timedelta(minutes=10)


def test_a_longer_retry_after_wins_and_is_capped_at_an_hour() -> None:
    assert retry_delay(1, retry_after=30) == timedelta(seconds=30)
    assert retry_delay(5, retry_after=1) == timedelta(seconds=32)
    assert retry_delay(1, retry_after=10**9) == timedelta(hours=1)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", now=NOW) == 120
    assert parse_retry_after("Sun, 22 Nov 2026 09:01:30 GMT", now=NOW) == 90
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None


def test_masked_urls_keep_the_host_and_lose_the_secrets() -> None:
    teams = "https://acme.webhook.office.com/webhookb2/1f0e9d8c-7b6a-5f4e-3d2c-1b0a9f8e7d6c@x/IncomingWebhook/abcdef0123456789abcdef/9f8e7d6c"
    masked = mask_url(teams)
    assert masked.startswith("https://acme.webhook.office.com/webhookb2/***")
    assert "abcdef0123456789abcdef" not in masked
    assert "1f0e9d8c" not in masked
    assert mask_url("https://user:pw@hooks.example.com/in?token=s3cr3t") == (
        "https://hooks.example.com/in?***"
    )
