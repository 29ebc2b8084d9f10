"""The access table: every route of the app has a rule, and every rule is enforced as written.

The route-by-route checks read their answers from one app that served the whole table (see
`observed`): about two hundred requests, without building an app and a database for each.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from dragon.api.access import ACCESS, PUBLIC, Access, check_table_covers, route_keys
from dragon.app import create_app
from dragon.domain.enums import Role
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Settings
from dragon.store.tables import metadata
from tests.conftest import POSTGRES_URL, FakeClock, Keys
from tests.support.readiness import app_ready

Route = tuple[str, str]

DUMMY_IDS = {
    "incident_id": "inc_" + "0" * 28,
    "delivery_id": "dlv_" + "0" * 28,
    "decision_id": "dec_" + "0" * 28,
    "key_id": "key_" + "0" * 28,
    "move": "acknowledge",
    "run_id": "run_" + "0" * 28,
    "name": "some-runbook",
    "notification_id": "ntf_" + "0" * 28,
}
# The specification the app's ACCESS table must match: who may call each route.
BARS: dict[Route, Access] = {
    ("GET", "/livez"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/me"): Role.VIEWER,
    ("GET", "/api/v1/incidents"): Role.VIEWER,
    ("POST", "/api/v1/incidents"): Role.DEVELOPER,
    ("GET", "/api/v1/incidents/{incident_id}"): Role.VIEWER,
    ("GET", "/api/v1/incidents/{incident_id}/signals"): Role.VIEWER,
    ("GET", "/api/v1/incidents/{incident_id}/links"): Role.VIEWER,
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): Role.DEVELOPER,
    ("POST", "/api/v1/incidents/{incident_id}/resolve"): Role.DEVELOPER,
    ("GET", "/api/v1/decisions"): Role.VIEWER,
    ("POST", "/api/v1/decisions"): Role.DEVELOPER,
    ("GET", "/api/v1/decisions/{decision_id}"): Role.VIEWER,
    ("POST", "/api/v1/decisions/{decision_id}/approve"): Role.APPROVER,
    ("POST", "/api/v1/decisions/{decision_id}/reject"): Role.APPROVER,
    ("POST", "/api/decisions"): Role.DEVELOPER,
    ("POST", "/api/approvals"): Role.APPROVER,
    ("GET", "/api/v1/policy"): Role.VIEWER,
    ("PUT", "/api/v1/policy"): Role.ADMIN,
    ("GET", "/api/v1/policy/versions"): Role.VIEWER,
    ("GET", "/api/v1/audit"): Role.ADMIN,
    ("GET", "/api/v1/audit/verify"): Role.ADMIN,
    ("GET", "/api/v1/keys"): Role.ADMIN,
    ("POST", "/api/v1/keys"): Role.ADMIN,
    ("DELETE", "/api/v1/keys/{key_id}"): Role.ADMIN,
    ("POST", "/webhooks/github"): PUBLIC,
    ("POST", "/webhooks/gitlab"): PUBLIC,
    ("POST", "/webhooks/jenkins"): PUBLIC,
    ("POST", "/webhooks/alertmanager"): PUBLIC,
    ("POST", "/integrations/slack/actions"): PUBLIC,
    ("GET", "/api/v1/notifications"): Role.ADMIN,
    ("GET", "/api/v1/notifications/{notification_id}"): Role.ADMIN,
    ("POST", "/api/v1/notifications/{notification_id}/retry"): Role.ADMIN,
    ("POST", "/api/v1/events"): Role.DEVELOPER,
    ("POST", "/api/ci/event"): Role.DEVELOPER,
    ("POST", "/api/observability/alert"): Role.DEVELOPER,
    ("GET", "/api/v1/deliveries"): Role.ADMIN,
    ("GET", "/api/v1/deliveries/{delivery_id}"): Role.ADMIN,
    ("POST", "/api/v1/deliveries/{delivery_id}/retry"): Role.ADMIN,
    ("GET", "/api/v1/dashboard"): Role.VIEWER,
    ("GET", "/api/v1/dashboard/stream"): Role.VIEWER,
    ("POST", "/api/v1/playground/decisions"): PUBLIC,
    ("GET", "/api/v1/playground/scenarios"): PUBLIC,
    ("GET", "/api/v1/playground/stats"): PUBLIC,
    ("POST", "/api/playground/submit-decision"): PUBLIC,
    ("GET", "/api/playground/scenarios"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/static/{path:path}"): PUBLIC,
    ("GET", "/playground"): PUBLIC,
    ("POST", "/logout"): Role.VIEWER,
    ("GET", "/"): Role.VIEWER,
    ("GET", "/dashboard/panel"): Role.VIEWER,
    ("GET", "/incidents"): Role.VIEWER,
    ("GET", "/incidents/{incident_id}"): Role.VIEWER,
    ("POST", "/incidents/{incident_id}/{move}"): Role.DEVELOPER,
    ("GET", "/approvals"): Role.VIEWER,
    ("POST", "/approvals/{decision_id}"): Role.APPROVER,
    ("GET", "/policy"): Role.VIEWER,
    ("POST", "/policy/simulate"): Role.VIEWER,
    ("GET", "/audit"): Role.ADMIN,
    ("GET", "/keys"): Role.ADMIN,
    ("POST", "/keys"): Role.ADMIN,
    ("POST", "/keys/{key_id}/revoke"): Role.ADMIN,
    ("GET", "/runbooks"): Role.VIEWER,
    ("GET", "/runbooks/{name}"): Role.VIEWER,
    ("POST", "/runbooks/{name}/runs"): Role.DEVELOPER,
    ("GET", "/runs"): Role.VIEWER,
    ("GET", "/runs/panel"): Role.VIEWER,
    ("GET", "/runs/{run_id}"): Role.VIEWER,
    ("GET", "/runs/{run_id}/panel"): Role.VIEWER,
    ("POST", "/api/v1/triage"): Role.DEVELOPER,
    ("POST", "/api/support/evaluate"): Role.DEVELOPER,
    ("GET", "/api/v1/runs"): Role.VIEWER,
    ("GET", "/api/v1/runs/{run_id}"): Role.VIEWER,
    ("GET", "/api/v1/actions/switch"): Role.VIEWER,
    ("PUT", "/api/v1/actions/switch"): Role.ADMIN,
    ("POST", "/api/v1/runbooks"): Role.ADMIN,
    ("GET", "/api/v1/runbooks"): Role.VIEWER,
    ("GET", "/api/v1/runbooks/{name}"): Role.VIEWER,
    ("POST", "/api/v1/runbooks/{name}/runs"): Role.DEVELOPER,
    ("POST", "/api/generate"): Role.DEVELOPER,
    ("POST", "/api/pr"): Role.DEVELOPER,
    ("POST", "/api/create-autofix-pr"): Role.DEVELOPER,
}
ROUTES: list[Route] = sorted(BARS)
PROTECTED = [route for route in ROUTES if BARS[route] != PUBLIC]
PUBLIC_ROUTES = [route for route in ROUTES if BARS[route] == PUBLIC]
ROLES = list(Role)
GARBAGE_KEY = "drg_" + "x" * 43


def role_below(required: Access) -> Role | None:
    rank = Role(required).rank
    return ROLES[rank - 1] if rank > 0 else None


# Routes whose bar is above viewer, paired with the role just below the bar.
GATED = [(route, below) for route in PROTECTED if (below := role_below(BARS[route]))]


def route_id(route: Route) -> str:
    return f"{route[0]} {route[1]}"


def concrete(path: str) -> str:
    return path.replace("{path:path}", "console.css").format(**DUMMY_IDS)


@dataclass(frozen=True)
class Outcome:
    status: int
    code: str | None
    www_authenticate: str | None


@dataclass(frozen=True)
class Observations:
    routes: set[Route]
    outcomes: dict[tuple[Route, str], Outcome]

    def of(self, route: Route, credential: str) -> Outcome:
        return self.outcomes[route, credential]


def credential_headers(
    secrets: dict[str, str], revoked: str
) -> Iterator[tuple[str, dict[str, str]]]:
    yield "none", {}
    yield "garbage", {"Authorization": f"Bearer {GARBAGE_KEY}"}
    yield "revoked", {"Authorization": f"Bearer {revoked}"}
    for role, secret in secrets.items():
        yield role, {"Authorization": f"Bearer {secret}"}


async def fresh_database(migrated_template: str, directory: Path) -> str:
    if POSTGRES_URL:
        engine = create_async_engine(POSTGRES_URL)
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()
        return POSTGRES_URL
    path = directory / "dragon.db"
    await asyncio.to_thread(shutil.copyfile, migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="module")
async def observed(
    migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Observations:
    """Every route called with no credentials, a garbage key, a revoked admin key, and a key of
    each role; the answers are kept and the app is shut down before any test reads them."""
    url = await fresh_database(migrated_template, tmp_path_factory.mktemp("access"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        bootstrap_admin=False,
        expiry_sweep_seconds=3600,
        log_format="console",
    )
    app = create_app(settings, clock=FakeClock())
    outcomes: dict[tuple[Route, str], Outcome] = {}
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await app_ready(app)
        auth = app.state.services.auth
        secrets = {}
        for role in Role:
            issued = await auth.create_key(SYSTEM_CALLER, name=f"matrix-{role}", role=role)
            secrets[role.value] = issued.secret
        revoked = await auth.create_key(SYSTEM_CALLER, name="matrix-revoked", role=Role.ADMIN)
        await auth.revoke_key(SYSTEM_CALLER, revoked.key.id)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            for route in ROUTES:
                method, path = route
                for credential, headers in credential_headers(secrets, revoked.secret):
                    response = await http.request(method, concrete(path), headers=headers)
                    problem = "problem+json" in response.headers.get("content-type", "")
                    outcomes[route, credential] = Outcome(
                        status=response.status_code,
                        code=response.json()["code"] if problem else None,
                        www_authenticate=response.headers.get("www-authenticate"),
                    )
        served = route_keys(app.routes)
    return Observations(routes=served, outcomes=outcomes)


# ---- the table covers the app ------------------------------------------------------------------


def test_every_route_of_the_app_has_an_access_rule(observed: Observations) -> None:
    assert observed.routes - ACCESS.keys() == set()


def test_the_access_table_names_no_route_the_app_does_not_serve(observed: Observations) -> None:
    assert ACCESS.keys() - observed.routes == set()


def test_the_access_table_sets_the_specified_bar_for_every_route() -> None:
    assert {route: str(bar) for route, bar in ACCESS.items()} == {
        route: str(bar) for route, bar in BARS.items()
    }


def test_a_route_missing_from_the_table_is_caught_inside_an_included_router() -> None:
    router = APIRouter(prefix="/api/v1/export")

    @router.get("")
    async def export_everything() -> dict[str, str]:
        return {}

    unchecked = FastAPI()
    unchecked.include_router(router)
    with pytest.raises(RuntimeError, match=r"\('GET', '/api/v1/export'\)"):
        check_table_covers(unchecked.routes)


def test_the_checks_below_walk_every_route_the_app_serves(observed: Observations) -> None:
    assert observed.routes == set(ROUTES)


# ---- each protected route, each kind of bad credential ----------------------------------------


@pytest.mark.parametrize("route", PROTECTED, ids=route_id)
def test_protected_route_without_credentials_is_401_authentication_required(
    observed: Observations, route: Route
) -> None:
    outcome = observed.of(route, "none")
    assert (outcome.status, outcome.code) == (401, "authentication_required")
    assert outcome.www_authenticate == 'Bearer realm="dragon"'


@pytest.mark.parametrize("route", PROTECTED, ids=route_id)
def test_protected_route_with_an_unknown_api_key_is_401_credentials_invalid(
    observed: Observations, route: Route
) -> None:
    outcome = observed.of(route, "garbage")
    assert (outcome.status, outcome.code) == (401, "credentials_invalid")


@pytest.mark.parametrize("route", PROTECTED, ids=route_id)
def test_protected_route_refuses_a_revoked_key(observed: Observations, route: Route) -> None:
    outcome = observed.of(route, "revoked")
    assert (outcome.status, outcome.code) == (401, "credentials_invalid")


@pytest.mark.parametrize(("route", "below"), GATED, ids=[f"{route_id(r)} as {b}" for r, b in GATED])
def test_protected_route_refuses_the_role_just_below_its_bar_with_403(
    observed: Observations, route: Route, below: Role
) -> None:
    outcome = observed.of(route, below.value)
    assert (outcome.status, outcome.code) == (403, "role_insufficient")


# Webhook receivers need no Dragon credentials, but each checks its sender's own signature or
# token: unsigned, they are refused by that check, never by Dragon's authentication.
SENDER_AUTHENTICATED = [
    route for route in PUBLIC_ROUTES if route[1].startswith(("/webhooks/", "/integrations/"))
]
OPEN_ROUTES = [route for route in PUBLIC_ROUTES if route not in SENDER_AUTHENTICATED]


@pytest.mark.parametrize("route", OPEN_ROUTES, ids=route_id)
def test_public_route_answers_without_credentials(observed: Observations, route: Route) -> None:
    outcome = observed.of(route, "none")
    if route[0] == "GET":
        assert outcome.status == 200, outcome
    else:
        # Posted empty, a public form or endpoint judges the body, never the credentials.
        assert 400 <= outcome.status < 500, outcome
        assert outcome.status not in (401, 403), outcome


@pytest.mark.parametrize("route", SENDER_AUTHENTICATED, ids=route_id)
def test_unsigned_webhook_is_refused_by_its_sender_check(
    observed: Observations, route: Route
) -> None:
    outcome = observed.of(route, "none")
    assert outcome.status == 401, outcome
    assert outcome.code in {
        "signature_invalid",
        "token_invalid",
        "webhook_secret_missing",
        "slack_signature_invalid",
    }


MATRIX = [(route, role) for route in ROUTES for role in ROLES]


@pytest.mark.parametrize(
    ("route", "role"), MATRIX, ids=[f"{route_id(r)} as {role}" for r, role in MATRIX]
)
def test_rbac_matrix_refuses_below_the_bar_and_admits_at_or_above_it(
    observed: Observations, route: Route, role: Role
) -> None:
    outcome = observed.of(route, role.value)
    required = BARS[route]
    if required != PUBLIC and not role.includes(Role(required)):
        assert (outcome.status, outcome.code) == (403, "role_insufficient")
    elif route in SENDER_AUTHENTICATED:
        # A Dragon key is no webhook signature: the sender check still decides.
        assert outcome.status == 401, outcome
        assert outcome.code != "authentication_required", outcome
    else:
        assert outcome.status not in (401, 403), outcome
        assert outcome.status < 500, outcome


# ---- how credentials are presented -------------------------------------------------------------


async def test_basic_authorization_is_refused_even_with_a_valid_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    basic = base64.b64encode(f"admin:{keys.admin}".encode()).decode()
    response = await client.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401
    assert response.json()["code"] == "credentials_invalid"


async def test_bearer_without_a_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer   "})
    assert response.status_code == 401
    assert response.json()["code"] == "credentials_invalid"


async def test_x_api_key_header_authenticates(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/me", headers={"X-API-Key": keys.approver})
    assert response.status_code == 200
    assert response.json()["name"] == "approver"
    assert response.json()["role"] == "approver"


async def test_x_api_key_with_an_unknown_key_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers={"X-API-Key": GARBAGE_KEY})
    assert response.status_code == 401
    assert response.json()["code"] == "credentials_invalid"


async def test_me_shows_the_principal_behind_the_key(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/me", headers=keys.of("developer2"))
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["role"], body["kind"]) == ("developer2", "developer", "user")
    assert body["id"].startswith("prn_")


# ---- the keys themselves -----------------------------------------------------------------------


async def keys_by_name(client: httpx.AsyncClient, keys: Keys) -> dict[str, dict[str, object]]:
    response = await client.get("/api/v1/keys", headers=keys.of("admin"))
    assert response.status_code == 200
    return {k["name"]: k for k in response.json()}


async def test_a_key_records_when_it_was_last_used(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    clock.advance(hours=1)
    assert (await client.get("/api/v1/me", headers=keys.of("viewer"))).status_code == 200
    listed = await keys_by_name(client, keys)
    assert datetime.fromisoformat(str(listed["viewer"]["last_used_at"])) == clock.now
    assert listed["approver3"]["last_used_at"] is None


async def test_key_listing_never_shows_a_secret(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/keys", headers=keys.of("admin"))
    assert response.status_code == 200
    assert "key" not in response.json()[0]
    assert keys.admin not in response.text
    assert keys.viewer not in response.text


async def test_admin_issues_a_key_that_works_with_its_role(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post(
        "/api/v1/keys", json={"name": "ci-bot", "role": "developer"}, headers=keys.of("admin")
    )
    assert response.status_code == 201
    issued = response.json()
    assert issued["key"].startswith("drg_")
    assert issued["prefix"] == issued["key"][:10]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {issued['key']}"})
    assert (me.json()["name"], me.json()["role"]) == ("ci-bot", "developer")


async def test_revoking_a_key_locks_it_out_at_once(client: httpx.AsyncClient, keys: Keys) -> None:
    assert (await client.get("/api/v1/me", headers=keys.of("viewer"))).status_code == 200
    key_id = (await keys_by_name(client, keys))["viewer"]["id"]
    revoked = await client.delete(f"/api/v1/keys/{key_id}", headers=keys.of("admin"))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = await client.get("/api/v1/me", headers=keys.of("viewer"))
    assert after.status_code == 401
    assert after.json()["code"] == "credentials_invalid"
    again = await client.delete(f"/api/v1/keys/{key_id}", headers=keys.of("admin"))
    assert again.status_code == 409
    assert again.json()["code"] == "api_key_revoked"


async def test_anonymous_request_with_malformed_json_is_refused_before_its_body_is_parsed(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/incidents", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"


async def test_viewer_posting_malformed_json_gets_role_refusal_not_a_parse_error(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post(
        "/api/v1/decisions",
        content=b"{not json",
        headers={"content-type": "application/json", **keys.of("viewer")},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "role_insufficient"
