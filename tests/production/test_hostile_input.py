"""Hostile input: oversized and deeply nested bodies, invalid UTF-8, injection strings in text
fields and query parameters, path traversal in identifiers, and header and log-line injection.
Each gets a clear 4xx (or is stored as the inert text it is), never a 500, never half a write,
never a forged log line."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dragon.api.access import ACCESS
from dragon.services.container import Services
from tests.api.test_ingestion import github_headers
from tests.api.test_webhook_receivers import ALERTMANAGER_BEARER, jenkins_signed
from tests.conftest import WEBHOOK_SECRETS, Keys

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INJECTIONS = [
    "'; DROP TABLE incidents; --",
    '" OR 1=1 --',
    "1' UNION SELECT key_hash FROM api_keys --",
    "{{ 7*7 }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "${7*7}",
    "#{7*7}",
    "<script>alert(1)</script>",
    "%s%s%s%n",
    "\u202eevil\u202c",
]
TRAVERSALS = ["..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2f", "..%5C..%5Cwindows", "%00", "a%00b"]


async def incident_count(client: httpx.AsyncClient, keys: Keys) -> int:
    listed = await client.get("/api/v1/incidents", headers=keys.of("viewer"))
    assert listed.status_code == 200
    return len(listed.json()["items"])


@pytest.mark.parametrize("text", INJECTIONS)
async def test_injection_strings_in_text_fields_are_stored_as_inert_text(
    client: httpx.AsyncClient, keys: Keys, text: str
) -> None:
    made = await client.post(
        "/api/v1/incidents",
        json={"title": text, "description": text, "labels": {"team": text[:256]}},
        headers=keys.of("developer"),
    )

    assert made.status_code == 201, made.text
    read = await client.get(f"/api/v1/incidents/{made.json()['id']}", headers=keys.of("viewer"))
    assert read.json()["title"] == text.strip()
    assert read.json()["description"] == text.strip()
    assert await incident_count(client, keys) == 1


@pytest.mark.parametrize("text", INJECTIONS)
@pytest.mark.parametrize(
    "path", ["/api/v1/incidents", "/api/v1/decisions", "/api/v1/audit", "/api/v1/deliveries"]
)
async def test_injection_strings_in_query_parameters_are_a_4xx_or_match_nothing(
    client: httpx.AsyncClient, keys: Keys, text: str, path: str
) -> None:
    await client.post("/api/v1/incidents", json={"title": "real"}, headers=keys.of("developer"))
    for name in ("q", "status", "severity", "source", "repo", "cursor", "limit", "action"):
        answer = await client.get(path, params={name: text}, headers=keys.of("admin"))
        assert answer.status_code in (200, 400, 422), (name, answer.text)
        if answer.status_code == 200:
            assert all(text not in json.dumps(item) for item in answer.json()["items"])
        else:
            assert answer.headers["content-type"] == "application/problem+json"
    assert await incident_count(client, keys) == 1


@pytest.mark.parametrize("bad", ["\x00", "nul\x00inside", "bell\x07", "esc\x1b[31m"])
async def test_control_characters_in_a_title_are_refused_with_422(
    client: httpx.AsyncClient, keys: Keys, bad: str
) -> None:
    refused = await client.post(
        "/api/v1/incidents", json={"title": bad}, headers=keys.of("developer")
    )

    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validation_failed"
    assert await incident_count(client, keys) == 0


@pytest.mark.parametrize(
    "template",
    [
        "/api/v1/incidents/{}",
        "/api/v1/incidents/{}/signals",
        "/api/v1/decisions/{}",
        "/api/v1/deliveries/{}",
        "/api/v1/keys/{}",
    ],
)
@pytest.mark.parametrize("traversal", TRAVERSALS)
async def test_path_traversal_in_an_identifier_is_a_404(
    client: httpx.AsyncClient, keys: Keys, template: str, traversal: str
) -> None:
    method = "DELETE" if template.startswith("/api/v1/keys") else "GET"
    answer = await client.request(method, template.format(traversal), headers=keys.of("admin"))

    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "root:" not in answer.text


# Every route with an identifier in its path, from the access table (which a test in
# tests/api/test_access.py keeps equal to the routes the app serves).
IDENTIFIED_ROUTES = sorted(
    route for route in ACCESS if "{" in route[1] and "{path:path}" not in route[1]
)
WIDER_TRAVERSALS = [*TRAVERSALS, "%252e%252e%252f", "inc_..%2f..%2fapi_keys", "..%c0%af..%c0%af"]


@pytest.mark.parametrize(
    "route", IDENTIFIED_ROUTES, ids=[f"{method} {path}" for method, path in IDENTIFIED_ROUTES]
)
async def test_path_traversal_in_every_identifier_of_every_route_is_a_4xx(
    client: httpx.AsyncClient, keys: Keys, route: tuple[str, str]
) -> None:
    method, template = route
    for traversal in WIDER_TRAVERSALS:
        path = re.sub(r"\{[^}]+\}", traversal, template)
        answer = await client.request(
            method,
            path,
            headers={**keys.of("admin"), "content-type": "application/json"},
            content=None if method == "GET" else b"{}",
        )
        if answer.status_code == 307:
            # Starlette's trailing-slash redirect, when the decoded path (`/incidents/../../`)
            # matches a route without its slash: on this origin, never outside it.
            assert answer.headers["location"].startswith(str(client.base_url)), answer.headers
            continue
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text[:300])
        assert "root:" not in answer.text
    assert await incident_count(client, keys) == 0


@pytest.mark.parametrize("depth", [64, 5000, 100_000])
@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/decisions", "/api/v1/events"])
async def test_deeply_nested_json_is_a_clear_4xx(
    client: httpx.AsyncClient, keys: Keys, depth: int, path: str
) -> None:
    body = '{"title": "nested", "labels": ' + "[" * depth + "]" * depth + "}"
    answer = await client.post(
        path,
        content=body,
        headers={**keys.of("developer"), "content-type": "application/json"},
    )

    assert answer.status_code in (400, 413, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert await incident_count(client, keys) == 0


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/decisions", "/api/v1/events"])
@pytest.mark.parametrize(
    "raw", [b'{"title": "\xff\xfe"}', b"\xc3\x28", b'{"title": "\xed\xa0\x80"}']
)
async def test_invalid_utf8_is_a_400(
    client: httpx.AsyncClient, keys: Keys, path: str, raw: bytes
) -> None:
    answer = await client.post(
        path, content=raw, headers={**keys.of("developer"), "content-type": "application/json"}
    )

    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert await incident_count(client, keys) == 0


async def test_an_oversized_body_on_every_creating_route_is_413(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    big = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    for path in ("/api/v1/incidents", "/api/v1/decisions", "/api/v1/events", "/api/v1/keys"):
        answer = await client.post(
            path, content=big, headers={**keys.of("admin"), "content-type": "application/json"}
        )
        assert answer.status_code == 413, path
        assert answer.json()["code"] == "body_too_large"
    assert await incident_count(client, keys) == 0


async def test_a_newline_in_the_correlation_id_or_the_path_forges_no_log_line(
    client: httpx.AsyncClient,
    keys: Keys,
    json_logs: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    json_logs()
    forged = '\n{"event": "forged", "level": "critical"}\r\n'
    answer = await client.get(
        "/api/v1/incidents/x%0A%7B%22event%22%3A%22forged%22%7D%0D%0A",
        headers=[
            *keys.of("viewer").items(),
            ("X-Correlation-ID", forged.encode("latin-1").decode("latin-1")),
        ],
    )
    await client.get("/api/v1/incidents", params={"q": forged}, headers=keys.of("viewer"))

    assert answer.status_code == 404
    assert "\n" not in answer.headers["x-correlation-id"]
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    events: list[dict[str, Any]] = [json.loads(line) for line in lines]  # one object per line
    assert events
    assert not any(event.get("event") == "forged" for event in events)
    assert all(
        event["correlation_id"] == answer.headers["x-correlation-id"] for event in events[:1]
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/incidents", "q"),
        ("/api/v1/incidents", "repo"),
        ("/api/v1/incidents", "source"),
        ("/api/v1/incidents", "cursor"),
        ("/api/v1/decisions", "action"),
        ("/api/v1/decisions", "incident_id"),
        ("/api/v1/deliveries", "source"),
    ],
)
async def test_a_nul_in_a_query_parameter_is_a_400(
    client: httpx.AsyncClient, keys: Keys, path: str, name: str
) -> None:
    answer = await client.get(path, params={name: "a\x00b"}, headers=keys.of("admin"))

    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "query_invalid"


def _signed_github(body: bytes, *, event: bytes, delivery: bytes) -> list[tuple[bytes, bytes]]:
    secret = WEBHOOK_SECRETS["github"].encode()
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    return [
        (b"content-type", b"application/json"),
        (b"x-hub-signature-256", b"sha256=" + digest),
        (b"x-github-event", event),
        (b"x-github-delivery", delivery),
    ]


@pytest.mark.parametrize("header", [b"x-github-delivery", b"x-github-event"])
@pytest.mark.parametrize("bad", [b"a\x00b", b"esc\x1b[31m", b"bell\x07", b"del\x7f"])
async def test_a_control_character_in_a_webhook_header_is_a_400_and_spares_the_deliveries_beside_it(
    client: httpx.AsyncClient, keys: Keys, header: bytes, bad: bytes
) -> None:
    # HTTP servers refuse most of these in a header; Dragon does not count on it (an ASGI server
    # or proxy may pass them), and PostgreSQL cannot store NUL in text at all.
    body = b'{"action": "completed", "workflow_run": {}}'
    hostile = [
        (name, bad if name == header else value)
        for name, value in _signed_github(body, event=b"workflow_run", delivery=b"d-hostile")
    ]
    good = [_signed_github(body, event=b"ping-not", delivery=f"d-{n}".encode()) for n in range(4)]
    answers = await asyncio.gather(
        client.post("/webhooks/github", content=body, headers=hostile),
        *(client.post("/webhooks/github", content=body, headers=each) for each in good),
    )

    refused, *stored = answers
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "delivery_header_invalid"
    assert [a.status_code for a in stored] == [202] * 4
    listed = await client.get("/api/v1/deliveries", headers=keys.of("admin"))
    assert sorted(d["delivery_key"] for d in listed.json()["items"]) == [f"d-{n}" for n in range(4)]


async def test_a_control_character_in_a_jenkins_job_name_is_a_400_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    body = json.dumps(
        {"name": 'shop\u0000\n{"forged": 1}', "build": {"number": 1, "phase": "COMPLETED"}}
    ).encode()
    secret = WEBHOOK_SECRETS["jenkins"].encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    answer = await client.post(
        "/webhooks/jenkins",
        content=body,
        headers={"content-type": "application/json", "x-jenkins-signature": signature},
    )

    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "delivery_header_invalid"
    listed = await client.get("/api/v1/deliveries", headers=keys.of("admin"))
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("path", "event"),
    [
        ("/api/v1/events", {"pipeline": "deploy\x00"}),
        ("/api/v1/events", {"job": "unit\ntests"}),
        ("/api/v1/events", {"labels": {"team": "a\x00b"}}),
        ("/api/v1/events", {"labels": {"team": "line\r\nforged: yes"}}),
        ("/api/v1/events", {"log_excerpt": "binary\x00output"}),
        ("/api/ci/event", {"workflow": "deploy\x00"}),
        ("/api/ci/event", {"log": "binary\x00output"}),
        ("/api/observability/alert", {"labels": {"team": "a\x00b"}}),
    ],
)
async def test_a_nul_or_line_break_in_an_events_name_or_label_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys, path: str, event: dict[str, Any]
) -> None:
    # Accepted, such an event would fail processing on PostgreSQL (NUL in text) until dead.
    base: dict[str, Any] = {
        "/api/v1/events": {"kind": "ci_failure", "title": "deploy failed", "repo": "acme/shop"},
        "/api/ci/event": {"repo": "acme/shop", "status": "failure"},
        "/api/observability/alert": {"alertname": "CheckoutErrors"},
    }[path]
    answer = await client.post(path, json={**base, **event}, headers=keys.of("developer"))

    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_failed"
    listed = await client.get("/api/v1/deliveries", headers=keys.of("admin"))
    assert listed.json()["items"] == []


async def test_an_events_log_keeps_its_colour_codes_and_line_breaks(
    client: httpx.AsyncClient, services: Services, keys: Keys
) -> None:
    log = "\x1b[31mFAILED\x1b[0m tests/test_cart.py::test_total\r\n\tassert 3 == 4\n"
    answer = await client.post(
        "/api/v1/events",
        json={
            "kind": "ci_failure",
            "title": "tests failed",
            "repo": "acme/shop",
            "log_excerpt": log,
        },
        headers=keys.of("developer"),
    )
    assert answer.status_code == 202, answer.text
    await services.processor.run_due()
    [incident] = (await client.get("/api/v1/incidents", headers=keys.of("viewer"))).json()["items"]
    [signal] = (
        await client.get(f"/api/v1/incidents/{incident['id']}/signals", headers=keys.of("viewer"))
    ).json()
    assert signal["log_excerpt"] == log


def _with_nul(event: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(
        (FIXTURES / "github" / f"{event}.completed.failure.json").read_text()
    )
    if event == "workflow_run":
        payload["workflow_run"]["name"] = "Build\x00and test"
    else:  # read around Fields.text: the check's output becomes the log excerpt
        payload["check_run"]["name"] = "Build\x00and test"
        payload["check_run"]["output"]["text"] = "binary\x00output"
    return payload


@pytest.mark.parametrize("event", ["workflow_run", "check_run"])
async def test_a_nul_in_a_vendor_payloads_text_opens_the_incident_with_a_replacement_character(
    client: httpx.AsyncClient, services: Services, keys: Keys, event: str
) -> None:
    # A vendor's payload is the vendor's: refusing it would lose the failure it reports.
    body = json.dumps(_with_nul(event)).encode()
    answer = await client.post(
        "/webhooks/github",
        content=body,
        headers=_signed_github(body, event=event.encode(), delivery=b"d-nul-in-body"),
    )
    assert answer.status_code == 202, answer.text

    assert await services.processor.run_due() == 1
    delivery = await client.get(
        f"/api/v1/deliveries/{answer.json()['delivery_id']}", headers=keys.of("admin")
    )
    assert delivery.json()["status"] == "processed", delivery.json()
    [incident] = (await client.get("/api/v1/incidents", headers=keys.of("viewer"))).json()["items"]
    assert "Build\ufffdand test" in incident["title"]


# A valid body for each creating route; each of its text fields in turn is given a NUL after
# its text, which PostgreSQL cannot store in text.
CREATING_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/incidents": {
        "title": "t",
        "description": "d",
        "url": "https://ci.example/run/1",
        "repo": "acme/api",
        "branch": "main",
        "labels": {"team": "a"},
    },
    "/api/v1/decisions": {
        "action": "comment",
        "title": "t",
        "rationale": "r",
        "impact": "i",
        "repo": "acme/api",
        "params": {"body": "b", "pull_number": 1},
        "risk": {"factors": [{"name": "f", "weight": 1, "detail": "d"}]},
    },
    "/api/decisions": {"action": "comment", "title": "t", "rationale": "r"},
    "/api/v1/keys": {"name": "probe", "role": "viewer", "email": "a@b.example"},
    "/api/v1/events": {
        "kind": "ci_failure",
        "title": "t",
        "repo": "acme/api",
        "url": "https://ci.example/run/1",
        "pipeline": "p",
        "log_excerpt": "l",
    },
    "/api/observability/alert": {"alertname": "A", "summary": "s", "url": "https://x.example/"},
    "/api/generate": {"repo": "acme/api", "log": "l", "rationale": "r"},
    "/api/pr": {"repo": "acme/api", "branch": "main", "description": "d"},
    "/api/v1/triage": {"text": "error: x failed", "labels": {"a": "b"}},
    "/api/support/evaluate": {"message": "m", "context": "c"},
    "/api/v1/runbooks": {
        "name": "hostile-input",
        "version": "1.0.0",
        "description": "d",
        "parameters": [{"name": "service", "type": "string", "description": "s"}],
        "steps": [{"id": "tell", "action": "notify", "with": {"message": "m"}}],
    },
}


def _text_fields(body: dict[str, Any], prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for name, value in body.items():
        if isinstance(value, str):
            found.append((*prefix, name))
        elif isinstance(value, dict):
            found.extend(_text_fields(value, (*prefix, name)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    found.extend(_text_fields(item, (*prefix, name, index)))
    return found


def _nul_after(body: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    """`body` with a NUL after the text at `path`: what makes the value valid stays."""
    changed = json.loads(json.dumps(body))
    place = changed
    for step in path[:-1]:
        place = place[step]
    place[path[-1]] += "\x00y"
    return changed


# What must differ from one request to the next so that a variant reaches the store instead of
# being refused as a duplicate of the valid body (a runbook version, a key's name).
UNIQUE_FIELDS = {"/api/v1/runbooks": "version", "/api/v1/keys": "name"}


def _unique(path: str, body: dict[str, Any], n: int) -> dict[str, Any]:
    field = UNIQUE_FIELDS.get(path)
    if field is None:
        return body
    return {**body, field: f"1.{n}.0" if field == "version" else f"hostile-{n}"}


@pytest.mark.parametrize("path", sorted(CREATING_BODIES))
async def test_a_nul_in_any_text_field_of_a_creating_route_is_never_a_5xx(
    client: httpx.AsyncClient, services: Services, keys: Keys, path: str
) -> None:
    body = CREATING_BODIES[path]
    assert (await client.post(path, json=body, headers=keys.of("admin"))).status_code < 300
    for n, field in enumerate(_text_fields(body), start=1):
        hostile = _nul_after(_unique(path, body, n), field)
        answer = await client.post(path, json=hostile, headers=keys.of("admin"))
        assert answer.status_code < 500, (field, answer.text[:300])
    await services.processor.run_due()  # what was accepted is processed, not left to die
    pending = await client.get(
        "/api/v1/deliveries", params={"status": "pending"}, headers=keys.of("admin")
    )
    assert pending.json()["items"] == []


async def test_a_nul_in_a_runbook_runs_version_or_the_actions_switch_reason_is_a_422(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    manifest = CREATING_BODIES["/api/v1/runbooks"]
    registered = await client.post("/api/v1/runbooks", json=manifest, headers=keys.of("admin"))
    assert registered.status_code == 201, registered.text
    run = await client.post(
        f"/api/v1/runbooks/{manifest['name']}/runs",
        json={"version": "1.0.0\x00", "parameters": {"service": "checkout"}},
        headers=keys.of("admin"),
    )
    switch = await client.put(
        "/api/v1/actions/switch",
        json={"enabled": False, "reason": "freeze\x00"},
        headers=keys.of("admin"),
    )
    assert (run.status_code, switch.status_code) == (422, 422), (run.text, switch.text)


def _overlong_deliveries() -> list[tuple[str, bytes, dict[str, str]]]:
    """A delivery from each vendor with texts wider than a signal keeps."""
    github = json.loads((FIXTURES / "github" / "workflow_run.completed.failure.json").read_text())
    github["workflow_run"]["name"] = "w" * 250
    github["workflow_run"]["head_branch"] = "b" * 300
    jenkins = json.loads((FIXTURES / "jenkins" / "completed.failure.json").read_text())
    jenkins["build"]["scm"]["branch"] = "origin/" + "b" * 300
    alerts = json.loads((FIXTURES / "alertmanager" / "firing.json").read_text())
    alerts["alerts"][0]["labels"]["env"] = "e" * 100
    alerts["alerts"][1]["labels"]["commit"] = "c" * 100
    github_body, jenkins_body = json.dumps(github).encode(), json.dumps(jenkins).encode()
    return [
        ("github", github_body, github_headers(github_body, "workflow_run")),
        ("jenkins", jenkins_body, jenkins_signed(jenkins_body)),
        ("alertmanager", json.dumps(alerts).encode(), ALERTMANAGER_BEARER),
    ]


@pytest.mark.parametrize("delivery", _overlong_deliveries(), ids=lambda d: d[0])
async def test_a_vendor_text_wider_than_a_signal_keeps_is_cut_and_the_incident_opens(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    delivery: tuple[str, bytes, dict[str, str]],
) -> None:
    # PostgreSQL refuses a text wider than its column: uncut, the delivery failed until dead.
    source, body, headers = delivery
    answer = await client.post(f"/webhooks/{source}", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    await services.processor.run_due()
    stored = await client.get(
        f"/api/v1/deliveries/{answer.json()['delivery_id']}", headers=keys.of("admin")
    )
    assert stored.json()["status"] == "processed", stored.json()
    [incident] = (await client.get("/api/v1/incidents", headers=keys.of("viewer"))).json()["items"]
    assert len(incident["branch"] or "") <= 255
    assert len(incident["environment"] or "") <= 64


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/events", {"kind": "ci_failure", "title": "t", "source": "s" * 33}),
        ("/api/ci/event", {"repo": "acme/shop", "status": "failure", "provider": "p" * 33}),
        ("/api/v1/incidents", {"title": "t", "source": "s" * 33}),
        ("/api/v1/incidents", {"title": "t", "repo": "acme/" + "r" * 200}),
        ("/api/v1/decisions", {"action": "comment", "title": "t", "repo": "acme/" + "r" * 200}),
    ],
)
async def test_an_api_text_wider_than_the_store_keeps_is_a_422(
    client: httpx.AsyncClient, keys: Keys, path: str, body: dict[str, Any]
) -> None:
    answer = await client.post(path, json=body, headers=keys.of("developer"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_failed"
