"""HTTP conventions every route keeps: correlation ids, one error envelope, security headers,
the body limit, probes, and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from dragon.app import create_app
from dragon.services.container import Services
from dragon.settings import Settings
from tests.conftest import Keys

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "correlation_id"}
MISSING_INCIDENT = "inc_" + "0" * 28


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_MEMBERS
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"] == f"urn:dragon:problem:{code}"
    assert body["title"]
    assert body["detail"]
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body


# ---- correlation ids ----------------------------------------------------------------------------


async def test_a_safe_correlation_id_is_echoed(client: httpx.AsyncClient) -> None:
    for value in ("req-42", "trace:0af7651916cd43dd.b7ad6b7169203331", "x" * 128):
        response = await client.get("/livez", headers={"X-Correlation-ID": value})
        assert response.headers["x-correlation-id"] == value


async def test_a_missing_correlation_id_is_generated(client: httpx.AsyncClient) -> None:
    first = await client.get("/livez")
    second = await client.get("/livez")
    assert GENERATED_ID.match(first.headers["x-correlation-id"])
    assert first.headers["x-correlation-id"] != second.headers["x-correlation-id"]


UNSAFE_CORRELATION_IDS = {
    "too long": "x" * 129,
    "space": "req 42",
    "trailing newline": "req-42\n",
    "header injection": "req\nSet-Cookie: a=b",
    "markup": "<script>alert(1)</script>",
    "empty": "",
}


async def test_an_unsafe_correlation_id_is_replaced(client: httpx.AsyncClient) -> None:
    for why, unsafe in UNSAFE_CORRELATION_IDS.items():
        response = await client.get("/livez", headers={"X-Correlation-ID": unsafe})
        assert response.status_code == 200, why
        assert GENERATED_ID.match(response.headers["x-correlation-id"]), why


async def test_correlation_id_is_in_the_problem_body(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get(
        f"/api/v1/incidents/{MISSING_INCIDENT}",
        headers={**keys.of("viewer"), "X-Correlation-ID": "req-404"},
    )
    assert assert_problem(response, 404, "incident_not_found")["correlation_id"] == "req-404"


async def test_correlation_id_is_recorded_on_the_audit_event_of_its_request(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = await client.post(
        "/api/v1/incidents",
        json={"title": "queue backlog"},
        headers={**keys.of("developer"), "X-Correlation-ID": "req-create-1"},
    )
    assert created.status_code == 201
    events = await client.get(
        "/api/v1/audit",
        params={"target_id": created.json()["id"], "action": "incident.created"},
        headers=keys.of("admin"),
    )
    [event] = events.json()["items"]
    assert event["correlation_id"] == "req-create-1"
    assert event["client_address"] == "203.0.113.7"


# ---- one error envelope -------------------------------------------------------------------------

Call = Callable[[httpx.AsyncClient, Keys], Awaitable[httpx.Response]]


async def _unauthenticated(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.get("/api/v1/me")


async def _forbidden(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.get("/api/v1/audit", headers=keys.of("approver"))


async def _not_found(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.get(f"/api/v1/incidents/{MISSING_INCIDENT}", headers=keys.of("viewer"))


async def _no_route(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.get("/api/v1/nothing-here", headers=keys.of("viewer"))


async def _wrong_method(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.delete("/api/v1/incidents", headers=keys.of("admin"))


async def _conflict(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    incident = await client.post(
        "/api/v1/incidents", json={"title": "flaky"}, headers=keys.of("developer")
    )
    url = f"/api/v1/incidents/{incident.json()['id']}/resolve"
    await client.post(url, headers=keys.of("developer"))
    return await client.post(url, headers=keys.of("developer"))


async def _invalid(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.post("/api/v1/incidents", json={}, headers=keys.of("developer"))


async def _malformed(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.post(
        "/api/v1/incidents",
        content=b"{",
        headers={**keys.of("developer"), "Content-Type": "application/json"},
    )


async def _too_large(client: httpx.AsyncClient, keys: Keys) -> httpx.Response:
    return await client.post(
        "/api/v1/incidents",
        content=b"{" + b" " * (1024 * 1024) + b"}",
        headers={**keys.of("developer"), "Content-Type": "application/json"},
    )


ERROR_CASES: list[tuple[Call, int, str]] = [
    (_unauthenticated, 401, "authentication_required"),
    (_forbidden, 403, "role_insufficient"),
    (_not_found, 404, "incident_not_found"),
    (_no_route, 404, "route_not_found"),
    (_wrong_method, 405, "method_not_allowed"),
    (_conflict, 409, "incident_transition_invalid"),
    (_invalid, 422, "validation_failed"),
    (_malformed, 400, "json_invalid"),
    (_too_large, 413, "body_too_large"),
]


async def test_every_kind_of_error_is_a_problem_document(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for call, status, code in ERROR_CASES:
        assert_problem(await call(client, keys), status, code)


async def test_unknown_route_is_404_route_not_found(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v2/incidents"), 404, "route_not_found")


async def test_wrong_method_is_405_and_names_the_allowed_ones(client: httpx.AsyncClient) -> None:
    response = await client.put("/livez")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_unauthenticated_answer_says_how_to_authenticate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/incidents")
    assert_problem(response, 401, "authentication_required")
    assert response.headers["www-authenticate"] == 'Bearer realm="dragon"'


# ---- security headers ---------------------------------------------------------------------------


async def test_security_headers_are_on_every_response(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for path, credential, status in (
        ("/livez", None, 200),
        ("/api/v1/me", "viewer", 200),
        ("/api/v1/me", None, 401),
        ("/api/v1/audit", "viewer", 403),
        ("/nowhere", None, 404),
        ("/docs", None, 200),
    ):
        response = await client.get(path, headers=keys.of(credential) if credential else {})
        assert response.status_code == status, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
        assert response.headers["referrer-policy"] == "no-referrer", path


async def test_api_responses_forbid_loading_anything(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert "default-src 'none'" in response.headers["content-security-policy"]


# ---- the body limit -----------------------------------------------------------------------------


async def incident_count(client: httpx.AsyncClient, keys: Keys) -> int:
    response = await client.get("/api/v1/incidents", headers=keys.of("viewer"))
    return len(response.json()["items"])


async def test_body_over_the_limit_is_413_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys, settings: Settings
) -> None:
    padding = "x" * settings.max_body_bytes
    response = await client.post(
        "/api/v1/incidents",
        json={"title": "huge", "description": padding},
        headers=keys.of("developer"),
    )
    assert_problem(response, 413, "body_too_large")
    assert await incident_count(client, keys) == 0


async def test_streamed_body_over_the_limit_is_413_and_stores_nothing(
    client: httpx.AsyncClient, keys: Keys, settings: Settings
) -> None:
    chunk = b" " * 65536
    chunks = settings.max_body_bytes // len(chunk) + 1

    async def body() -> AsyncIterator[bytes]:
        yield b'{"title": "streamed", "description": "'
        for _ in range(chunks):
            yield chunk
        yield b'"}'

    response = await client.post(
        "/api/v1/incidents",
        content=body(),
        headers={**keys.of("developer"), "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body_too_large")
    assert await incident_count(client, keys) == 0


async def test_oversized_policy_upload_is_413(
    client: httpx.AsyncClient, keys: Keys, settings: Settings
) -> None:
    response = await client.put(
        "/api/v1/policy",
        content=b"#" * (settings.max_body_bytes + 1),
        headers={**keys.of("admin"), "Content-Type": "application/yaml"},
    )
    assert_problem(response, 413, "body_too_large")
    versions = await client.get("/api/v1/policy/versions", headers=keys.of("viewer"))
    assert len(versions.json()) == 1


async def test_body_exactly_at_the_limit_is_read(
    client: httpx.AsyncClient, keys: Keys, settings: Settings
) -> None:
    prefix, suffix = b'{"title": "at the limit", "description": "', b'"}'
    filler = b"x" * (settings.max_body_bytes - len(prefix) - len(suffix))
    response = await client.post(
        "/api/v1/incidents",
        content=prefix + filler + suffix,
        headers={**keys.of("developer"), "Content-Type": "application/json"},
    )
    # Read and judged on its fields (the description is too long), not refused for its size.
    assert_problem(response, 422, "validation_failed")
    assert [e["field"] for e in response.json()["errors"]] == ["description"]


# ---- probes and documentation -------------------------------------------------------------------


async def test_livez_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_and_its_health_alias_report_the_database_and_migrations_ok(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/readyz", "/health"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.json() == {
            "status": "ok",
            "checks": {"database": "ok", "migrations": "ok"},
            "breakers": {},
        }


async def test_readiness_shows_every_breaker_and_its_state(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.breakers.breaker("github", failure_threshold=1).failed()
    services.breakers.breaker("slack")
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["breakers"] == {"github": "open", "slack": "closed"}


async def test_unmigrated_store_starts_but_is_not_ready(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{empty}",
        bootstrap_admin=False,
        expiry_sweep_seconds=3600,
        log_format="console",
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            live = await http.get("/livez")
            ready = await http.get("/readyz")
            health = await http.get("/health")
    assert live.status_code == 200
    for response in (ready, health):
        body = assert_problem(response, 503, "not_ready")
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["migrations"] != "ok"
        assert "migrations" in body["detail"]
        assert response.headers["retry-after"] == "5"


async def test_openapi_document_lists_the_decision_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/api/v1/decisions"]) == {"get", "post"}
    assert "post" in paths["/api/v1/decisions/{decision_id}/approve"]
    assert "post" in paths["/api/approvals"]
