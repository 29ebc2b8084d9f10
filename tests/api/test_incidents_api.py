"""Incidents through the API: open, validate, list and search, page, acknowledge and resolve."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.conftest import FakeClock, Keys

MISSING = "inc_" + "0" * 28


async def open_incident(
    client: httpx.AsyncClient, keys: Keys, who: str = "developer", **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/incidents", json={"title": "checkout is failing", **body}, headers=keys.of(who)
    )
    assert response.status_code == 201, response.text
    incident: dict[str, Any] = response.json()
    return incident


async def listed_ids(client: httpx.AsyncClient, keys: Keys, **query: Any) -> list[str]:
    response = await client.get("/api/v1/incidents", params=query, headers=keys.of("viewer"))
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["items"]]


async def principal_id(client: httpx.AsyncClient, keys: Keys, who: str) -> str:
    found: str = (await client.get("/api/v1/me", headers=keys.of(who))).json()["id"]
    return found


async def audit_of(client: httpx.AsyncClient, keys: Keys, incident_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/audit", params={"target_id": incident_id}, headers=keys.of("admin")
    )
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["items"]))  # oldest first


async def transition(
    client: httpx.AsyncClient, keys: Keys, incident_id: str, to: str, who: str = "developer"
) -> httpx.Response:
    return await client.post(f"/api/v1/incidents/{incident_id}/{to}", headers=keys.of(who))


# ---- opening ------------------------------------------------------------------------------------


async def test_developer_opens_an_incident_and_reads_it_back_at_its_location(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    response = await client.post(
        "/api/v1/incidents",
        json={
            "title": "Deploy broke checkout",
            "severity": "SEV1",
            "repo": "acme/shop",
            "branch": "main",
            "commit_sha": "a1b2c3d",
            "environment": "production",
            "labels": {"team": "payments"},
        },
        headers=keys.of("developer"),
    )
    assert response.status_code == 201
    incident = response.json()
    assert incident["id"].startswith("inc_")
    assert response.headers["location"] == f"/api/v1/incidents/{incident['id']}"
    assert incident["status"] == "open"
    assert incident["severity"] == "SEV1"
    assert incident["source"] == "api"
    assert incident["labels"] == {"team": "payments"}
    assert incident["created_by"] == await principal_id(client, keys, "developer")
    assert datetime.fromisoformat(incident["created_at"]) == clock.now
    again = await client.get(response.headers["location"], headers=keys.of("viewer"))
    assert again.status_code == 200
    assert again.json() == incident


async def test_incident_defaults_to_sev3_from_the_api(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    incident = await open_incident(client, keys)
    assert (incident["severity"], incident["source"], incident["description"]) == (
        "SEV3",
        "api",
        "",
    )


async def test_viewer_cannot_open_an_incident(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/api/v1/incidents", json={"title": "not mine to open"}, headers=keys.of("viewer")
    )
    assert response.status_code == 403
    assert response.json()["code"] == "role_insufficient"
    assert await listed_ids(client, keys) == []


INVALID_FIELDS = [
    ("severity", "SEV9"),
    ("repo", "not a repo"),
    ("title", "x" * 301),
    ("title", "   "),
    ("commit_sha", "not-a-sha"),
    ("url", "javascript:alert(1)"),
    ("branch", "feature/../main"),
]


async def test_each_invalid_field_is_refused_and_named(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for field, value in INVALID_FIELDS:
        body = {"title": "checkout is failing", field: value}
        response = await client.post("/api/v1/incidents", json=body, headers=keys.of("developer"))
        assert response.status_code == 422, field
        problem = response.json()
        assert problem["code"] == "validation_failed", field
        assert [(e["location"], e["field"]) for e in problem["errors"]] == [("body", field)]
    assert await listed_ids(client, keys) == []


async def test_every_invalid_field_is_named_at_once(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "t" * 301, "severity": "critical", "repo": "acme", "priority": "P1"},
        headers=keys.of("developer"),
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_failed"
    assert {e["field"] for e in problem["errors"]} == {"title", "severity", "repo", "priority"}
    assert [e["message"] for e in problem["errors"] if e["field"] == "priority"] == [
        "unknown field"
    ]


async def test_malformed_json_is_400_json_invalid(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/api/v1/incidents",
        content=b'{"title": "unterminated',
        headers={**keys.of("developer"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "json_invalid"
    assert await listed_ids(client, keys) == []


# ---- listing, filtering, searching --------------------------------------------------------------


async def test_list_filters_by_status_severity_source_and_repo(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    shop = await open_incident(client, keys, severity="SEV1", repo="acme/shop", source="github")
    clock.advance(seconds=1)
    docs = await open_incident(client, keys, severity="SEV2", repo="acme/docs", source="github")
    clock.advance(seconds=1)
    alert = await open_incident(client, keys, severity="SEV1", source="alertmanager")
    assert (await transition(client, keys, docs["id"], "acknowledge")).status_code == 200

    assert await listed_ids(client, keys) == [alert["id"], docs["id"], shop["id"]]
    assert await listed_ids(client, keys, status="acknowledged") == [docs["id"]]
    assert await listed_ids(client, keys, status="open") == [alert["id"], shop["id"]]
    assert await listed_ids(client, keys, severity="SEV1") == [alert["id"], shop["id"]]
    assert await listed_ids(client, keys, source="github") == [docs["id"], shop["id"]]
    assert await listed_ids(client, keys, repo="acme/shop") == [shop["id"]]
    assert await listed_ids(client, keys, severity="SEV1", source="github") == [shop["id"]]
    assert await listed_ids(client, keys, status="resolved") == []


async def test_list_refuses_an_unknown_status(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get(
        "/api/v1/incidents", params={"status": "closed"}, headers=keys.of("viewer")
    )
    assert response.status_code == 422
    assert [(e["location"], e["field"]) for e in response.json()["errors"]] == [("query", "status")]


async def test_text_search_matches_title_or_description_ignoring_case(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    by_title = await open_incident(client, keys, title="Checkout latency above SLO")
    clock.advance(seconds=1)
    by_description = await open_incident(
        client, keys, title="Pager storm", description="started after the CHECKOUT deploy"
    )
    clock.advance(seconds=1)
    await open_incident(client, keys, title="Docs build failing")

    assert await listed_ids(client, keys, q="checkout") == [by_description["id"], by_title["id"]]
    assert await listed_ids(client, keys, q="cHeCkOuT LaTeNcY") == [by_title["id"]]
    assert await listed_ids(client, keys, q="no such words") == []


async def test_text_search_takes_percent_and_underscore_literally(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    percent = await open_incident(client, keys, title="Disk 100% full on runner")
    clock.advance(seconds=1)
    await open_incident(client, keys, title="Disk 1000 full on runner")
    clock.advance(seconds=1)
    underscore = await open_incident(client, keys, title="build_cache corrupted")
    clock.advance(seconds=1)
    await open_incident(client, keys, title="buildXcache corrupted")

    assert await listed_ids(client, keys, q="100%") == [percent["id"]]
    assert await listed_ids(client, keys, q="%") == [percent["id"]]
    assert await listed_ids(client, keys, q="build_cache") == [underscore["id"]]
    assert await listed_ids(client, keys, q="_") == [underscore["id"]]


async def test_cursor_pagination_returns_every_incident_once_newest_first(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    opened = []
    for n in range(7):
        opened.append((await open_incident(client, keys, title=f"incident {n}"))["id"])
        clock.advance(seconds=1)

    seen: list[str] = []
    sizes: list[int] = []
    query: dict[str, Any] = {"limit": 3}
    while True:
        response = await client.get("/api/v1/incidents", params=query, headers=keys.of("viewer"))
        assert response.status_code == 200
        page = response.json()
        seen += [i["id"] for i in page["items"]]
        sizes.append(len(page["items"]))
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    assert sizes == [3, 3, 1]
    assert seen == opened[::-1]


async def test_a_listed_incident_is_the_same_json_as_the_incident_read_alone(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    """The listing writes its page with orjson, the single read with pydantic: every field,
    null, datetime (with and without microseconds), label and non-ASCII text must match."""
    plain = await open_incident(client, keys, title="plain")
    clock.advance(seconds=1.25)
    full = await open_incident(
        client,
        keys,
        title='Déploiement échoué — 部署失败 "quoted" \\ back',
        description="line one\nline two\ttabbed \u2028 separator",
        severity="SEV1",
        source="gitlab",
        repo="org/checkout",
        branch="release/2026.12",
        commit_sha="0123456789abcdef0123456789abcdef01234567",
        environment="production",
        url="https://ci.example.com/jobs/42?x=1&y=2",
        labels={"team": "payments", "tier": "ünïcode"},
    )
    clock.advance(seconds=1)
    assert (await transition(client, keys, full["id"], "acknowledge")).status_code == 200

    listed = await client.get("/api/v1/incidents", headers=keys.of("viewer"))
    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/json"
    for incident in (full, plain):
        alone = await client.get(f"/api/v1/incidents/{incident['id']}", headers=keys.of("viewer"))
        assert alone.status_code == 200
        [item] = [i for i in listed.json()["items"] if i["id"] == incident["id"]]
        assert item == alone.json()
    assert listed.json()["next_cursor"] is None
    assert listed.json()["items"][0]["acknowledged_at"].endswith("Z")


async def test_malformed_cursor_is_refused(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get(
        "/api/v1/incidents", params={"cursor": "' OR 1=1 --"}, headers=keys.of("viewer")
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


# ---- acknowledge and resolve --------------------------------------------------------------------


async def test_incident_is_acknowledged_then_resolved_and_each_step_is_audited(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    incident = await open_incident(client, keys)
    clock.advance(minutes=3)
    acknowledged = await transition(client, keys, incident["id"], "acknowledge")
    assert acknowledged.status_code == 200
    assert acknowledged.json()["status"] == "acknowledged"
    assert acknowledged.json()["acknowledged_by"] == await principal_id(client, keys, "developer")
    assert datetime.fromisoformat(acknowledged.json()["acknowledged_at"]) == clock.now

    clock.advance(minutes=30)
    resolved = await client.post(
        f"/api/v1/incidents/{incident['id']}/resolve",
        json={"note": "rolled back to v41"},
        headers=keys.of("developer2"),
    )
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"] == await principal_id(client, keys, "developer2")
    assert datetime.fromisoformat(resolved.json()["resolved_at"]) == clock.now

    stored = await client.get(f"/api/v1/incidents/{incident['id']}", headers=keys.of("viewer"))
    assert stored.json()["status"] == "resolved"
    events = await audit_of(client, keys, incident["id"])
    assert [(e["action"], e["actor_name"]) for e in events] == [
        ("incident.created", "developer"),
        ("incident.acknowledged", "developer"),
        ("incident.resolved", "developer2"),
    ]
    assert events[1]["actor_id"] == await principal_id(client, keys, "developer")
    assert events[1]["details"] == {"from": "open", "to": "acknowledged"}
    assert events[2]["details"] == {
        "from": "acknowledged",
        "to": "resolved",
        "note": "rolled back to v41",
    }


async def test_open_incident_can_be_resolved_without_acknowledging(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    incident = await open_incident(client, keys)
    response = await transition(client, keys, incident["id"], "resolve")
    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert response.json()["acknowledged_at"] is None


async def test_resolved_incident_cannot_be_acknowledged(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    incident = await open_incident(client, keys)
    assert (await transition(client, keys, incident["id"], "resolve")).status_code == 200
    before = await audit_of(client, keys, incident["id"])
    response = await transition(client, keys, incident["id"], "acknowledge")
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "incident_transition_invalid"
    assert (problem["current"], problem["requested"]) == ("resolved", "acknowledged")
    stored = await client.get(f"/api/v1/incidents/{incident['id']}", headers=keys.of("viewer"))
    assert stored.json()["status"] == "resolved"
    assert stored.json()["acknowledged_at"] is None
    assert await audit_of(client, keys, incident["id"]) == before


async def test_resolving_twice_is_a_conflict(client: httpx.AsyncClient, keys: Keys) -> None:
    incident = await open_incident(client, keys)
    first = await transition(client, keys, incident["id"], "resolve")
    assert first.status_code == 200
    second = await transition(client, keys, incident["id"], "resolve", who="developer2")
    assert second.status_code == 409
    assert second.json()["code"] == "incident_transition_invalid"
    stored = await client.get(f"/api/v1/incidents/{incident['id']}", headers=keys.of("viewer"))
    assert stored.json()["resolved_by"] == first.json()["resolved_by"]


async def test_acknowledging_twice_is_a_conflict(client: httpx.AsyncClient, keys: Keys) -> None:
    incident = await open_incident(client, keys)
    assert (await transition(client, keys, incident["id"], "acknowledge")).status_code == 200
    again = await transition(client, keys, incident["id"], "acknowledge")
    assert again.status_code == 409
    assert again.json()["code"] == "incident_transition_invalid"


async def test_viewer_cannot_acknowledge(client: httpx.AsyncClient, keys: Keys) -> None:
    incident = await open_incident(client, keys)
    response = await transition(client, keys, incident["id"], "acknowledge", who="viewer")
    assert response.status_code == 403
    assert response.json()["code"] == "role_insufficient"
    stored = await client.get(f"/api/v1/incidents/{incident['id']}", headers=keys.of("viewer"))
    assert stored.json()["status"] == "open"


async def test_unknown_incident_is_404(client: httpx.AsyncClient, keys: Keys) -> None:
    for method, suffix in (("GET", ""), ("POST", "/acknowledge"), ("POST", "/resolve")):
        response = await client.request(
            method, f"/api/v1/incidents/{MISSING}{suffix}", headers=keys.of("developer")
        )
        assert response.status_code == 404, suffix
        assert response.json()["code"] == "incident_not_found", suffix
