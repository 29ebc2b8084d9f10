"""Bearer JWTs: accepted only when signed with the one configured algorithm and key, issued by
the configured issuer for the configured audience, unexpired, and carrying a known role."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dragon.app import create_app
from dragon.domain.enums import Role
from dragon.services.container import Services
from dragon.services.context import SYSTEM_CALLER
from dragon.settings import Settings
from tests.conftest import FakeClock
from tests.support.readiness import app_ready

SECRET = "kq3VtZ8sJ1mX4pR7wB2nY6cF9hL0dG5aE3uT8iO1zQ4vK7yN"  # 48 characters
ISSUER, AUDIENCE = "dragon", "dragon-api"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "alice",
        "name": "Alice Example",
        "role": "approver",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(clock.now.timestamp()),
        "exp": int(clock.now.timestamp()) + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token built without PyJWT, which refuses to make the malicious ones."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if secret is None:
        return f"{signing_input}."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Served:
    http: httpx.AsyncClient
    services: Services

    async def api_key(self, name: str, role: Role) -> str:
        issued = await self.services.auth.create_key(SYSTEM_CALLER, name=name, role=role)
        return issued.secret


@contextlib.asynccontextmanager
async def serve(database_url: str, clock: FakeClock, **jwt_settings: Any) -> AsyncIterator[Served]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        bootstrap_admin=False,
        expiry_sweep_seconds=3600,
        log_format="console",
        **jwt_settings,
    )
    app = create_app(settings, clock=clock)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await app_ready(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dragon.test") as http:
            yield Served(http=http, services=app.state.services)


@pytest.fixture
async def hs256(database_url: str, clock: FakeClock) -> AsyncIterator[Served]:
    async with serve(database_url, clock, jwt_secret=SECRET, jwt_algorithm="HS256") as served:
        yield served


def hs_token(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


async def refused(http: httpx.AsyncClient, token: str) -> str:
    response = await http.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    code: str = response.json()["code"]
    return code


# ---- HS256 --------------------------------------------------------------------------------------


async def test_valid_token_authenticates_as_a_jwt_principal_with_its_role(
    hs256: Served, clock: FakeClock
) -> None:
    response = await hs256.http.get("/api/v1/me", headers=bearer(hs_token(claims(clock))))
    assert response.status_code == 200
    me = response.json()
    assert (me["id"], me["name"], me["role"], me["kind"]) == (
        "jwt:alice",
        "Alice Example",
        "approver",
        "user",
    )


async def test_token_role_claim_gates_routes(hs256: Served, clock: FakeClock) -> None:
    viewer = hs_token(claims(clock, role="viewer"))
    response = await hs256.http.post(
        "/api/v1/incidents", json={"title": "from a viewer"}, headers=bearer(viewer)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "role_insufficient"


async def test_token_is_refused_once_the_clock_passes_its_expiry(
    hs256: Served, clock: FakeClock
) -> None:
    token = hs_token(claims(clock, exp=int(clock.now.timestamp()) + 300))
    assert (await hs256.http.get("/api/v1/me", headers=bearer(token))).status_code == 200
    clock.advance(minutes=6)
    assert await refused(hs256.http, token) == "token_expired"


async def test_token_issued_in_the_future_is_refused(hs256: Served, clock: FakeClock) -> None:
    later = int(clock.now.timestamp()) + 3600
    token = hs_token(claims(clock, iat=later, nbf=later, exp=later + 600))
    assert await refused(hs256.http, token) == "credentials_invalid"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
        {"exp": None},
        {"sub": None},
        {"role": "superuser"},
        {"role": None},
        {"exp": "tomorrow"},
    ],
    ids=[
        "wrong-audience",
        "wrong-issuer",
        "no-expiry",
        "no-subject",
        "unknown-role",
        "no-role",
        "expiry-not-a-number",
    ],
)
async def test_token_with_bad_claims_is_refused(
    hs256: Served, clock: FakeClock, overrides: dict[str, Any]
) -> None:
    assert await refused(hs256.http, hs_token(claims(clock, **overrides))) == "credentials_invalid"


async def test_token_signed_with_another_secret_is_refused(hs256: Served, clock: FakeClock) -> None:
    forged = hs_token(claims(clock), secret="another-secret-of-at-least-32-bytes!!")
    assert await refused(hs256.http, forged) == "credentials_invalid"


async def test_token_with_a_tampered_payload_is_refused(hs256: Served, clock: FakeClock) -> None:
    header, _, signature = hs_token(claims(clock, role="viewer")).split(".")
    promoted = b64(json.dumps(claims(clock, role="admin")).encode())
    assert await refused(hs256.http, f"{header}.{promoted}.{signature}") == "credentials_invalid"


async def test_unsigned_alg_none_token_is_refused(hs256: Served, clock: FakeClock) -> None:
    token = hand_signed({"alg": "none", "typ": "JWT"}, claims(clock, role="admin"), None)
    assert await refused(hs256.http, token) == "credentials_invalid"


async def test_garbage_bearer_token_is_refused(hs256: Served) -> None:
    assert await refused(hs256.http, "not-a-jwt-at-all") == "credentials_invalid"


async def test_jwt_approver_approves_and_is_recorded_by_subject(
    hs256: Served, clock: FakeClock
) -> None:
    developer = await hs256.api_key("dev", Role.DEVELOPER)
    proposed = await hs256.http.post(
        "/api/v1/decisions",
        json={"action": "rollback_deployment", "title": "roll back", "environment": "prod"},
        headers=bearer(developer),
    )
    assert proposed.json()["status"] == "pending_approval"
    response = await hs256.http.post(
        f"/api/v1/decisions/{proposed.json()['id']}/approve",
        json={"justification": "verified the previous release"},
        headers=bearer(hs_token(claims(clock))),
    )
    assert response.status_code == 200
    [approval] = response.json()["approvals"]
    assert (approval["principal_id"], approval["principal_name"]) == ("jwt:alice", "Alice Example")


async def test_jwt_proposer_cannot_approve_their_own_decision(
    hs256: Served, clock: FakeClock
) -> None:
    token = hs_token(claims(clock, role="admin"))
    proposed = await hs256.http.post(
        "/api/v1/decisions",
        json={"action": "rollback_deployment", "title": "roll back", "environment": "prod"},
        headers=bearer(token),
    )
    assert proposed.json()["proposer"]["id"] == "jwt:alice"
    same_subject = hs_token(claims(clock, role="admin", iat=int(clock.now.timestamp()) - 1))
    response = await hs256.http.post(
        f"/api/v1/decisions/{proposed.json()['id']}/approve",
        json={"justification": "a fresh token is still me"},
        headers=bearer(same_subject),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "separation_of_duties"


async def test_api_keys_keep_working_alongside_jwts(hs256: Served) -> None:
    response = await hs256.http.get(
        "/api/v1/me", headers=bearer(await hs256.api_key("ops", Role.ADMIN))
    )
    assert response.status_code == 200
    assert response.json()["name"] == "ops"


# ---- RS256 and algorithm confusion --------------------------------------------------------------


async def test_rs256_accepts_a_token_signed_with_the_private_key(
    database_url: str, clock: FakeClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(clock), rsa_key, algorithm="RS256")
    async with serve(
        database_url, clock, jwt_secret=public_pem(rsa_key), jwt_algorithm="RS256"
    ) as served:
        response = await served.http.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == "jwt:alice"


async def test_rs256_refuses_an_hs256_token_keyed_with_the_public_key(
    database_url: str, clock: FakeClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = public_pem(rsa_key)
    confused = hand_signed(
        {"alg": "HS256", "typ": "JWT"}, claims(clock, role="admin"), pem.encode()
    )
    async with serve(database_url, clock, jwt_secret=pem, jwt_algorithm="RS256") as served:
        assert await refused(served.http, confused) == "credentials_invalid"


async def test_rs256_refuses_an_unsigned_token(
    database_url: str, clock: FakeClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    unsigned = hand_signed({"alg": "none", "typ": "JWT"}, claims(clock, role="admin"), None)
    async with serve(
        database_url, clock, jwt_secret=public_pem(rsa_key), jwt_algorithm="RS256"
    ) as served:
        assert await refused(served.http, unsigned) == "credentials_invalid"


async def test_rs256_refuses_a_token_signed_by_another_key(
    database_url: str, clock: FakeClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(clock), stranger, algorithm="RS256")
    async with serve(
        database_url, clock, jwt_secret=public_pem(rsa_key), jwt_algorithm="RS256"
    ) as served:
        assert await refused(served.http, token) == "credentials_invalid"


# ---- JWT disabled -------------------------------------------------------------------------------


async def test_without_a_jwt_secret_every_non_key_token_is_refused(
    database_url: str, clock: FakeClock
) -> None:
    well_formed = hs_token(claims(clock, role="admin"))
    async with serve(database_url, clock) as served:
        for token in (well_formed, "opaque-token", "eyJhbGciOiJub25lIn0.e30."):
            assert await refused(served.http, token) == "credentials_invalid"
