"""Who is calling: API keys and JWT bearer tokens, resolved to a Principal.

API keys are `drg_` + 32 random bytes. Only their SHA-256 is stored: the key carries 256 bits of
randomness, so a slow password hash would add cost without adding safety.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from dragon.domain.clock import Clock
from dragon.domain.entities import ApiKey, Principal
from dragon.domain.enums import PrincipalKind, Role
from dragon.domain.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from dragon.domain.ids import new_id
from dragon.domain.ports import UnitOfWork, UnitOfWorkFactory
from dragon.services.audit_log import record
from dragon.services.context import SYSTEM_CALLER, Caller

KEY_PREFIX = "drg_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_CACHE_SECONDS = 5.0
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


@dataclass(frozen=True)
class JwtSettings:
    algorithm: str
    key: str | None  # the shared secret for HS*, the public key (PEM) otherwise
    issuer: str
    audience: str
    leeway_seconds: int = 30


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    principal: Principal
    secret: str  # shown once, never stored


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _bad_credentials(detail: str = "the credentials are not valid") -> Unauthenticated:
    return Unauthenticated(detail, code="credentials_invalid")


class AuthService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock, jwt_settings: JwtSettings) -> None:
        self._uow = uow
        self._clock = clock
        self._jwt = jwt_settings
        # A short cache keeps key lookups off the database on every request; revocation in this
        # process clears it at once, elsewhere within _CACHE_SECONDS.
        self._cache: dict[str, tuple[float, Principal, ApiKey]] = {}
        self._by_id: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, token: str) -> Principal:
        if token.startswith(KEY_PREFIX):
            return await self._from_api_key(token)
        if self._jwt.key:
            return self._from_jwt(token)
        raise _bad_credentials()

    async def _from_api_key(self, raw: str) -> Principal:
        digest = hash_key(raw)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._uow(write=False) as uow:
            key = await uow.api_keys.by_hash(digest)
            principal = await uow.principals.get(key.principal_id) if key else None
        # The lookup already matched the hash; comparing again in constant time keeps the
        # decision independent of how the database compared strings.
        if key is None or principal is None or not hmac.compare_digest(key.key_hash, digest):
            raise _bad_credentials()
        if key.revoked_at is not None or principal.disabled_at is not None:
            raise _bad_credentials("this API key has been revoked")
        now = self._clock()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            await self._touch(key.id, now)
        self._cache[digest] = (time.monotonic() + _CACHE_SECONDS, principal, key)
        return principal

    async def login(self, raw: str, *, client_address: str | None = None) -> tuple[Principal, str]:
        """A console login: only an API key (never a JWT) opens a session. Returns the principal
        and the key's id, which the session cookie carries instead of the secret."""
        if not raw.startswith(KEY_PREFIX):
            raise _bad_credentials("log in with a Dragon API key (it starts with drg_)")
        principal = await self._from_api_key(raw)
        cached = self._cache[hash_key(raw)]
        key = cached[2]
        now = self._clock()
        async with self._uow() as uow:
            await record(
                uow,
                Caller(principal=principal, client_address=client_address),
                action="session.started",
                target_type="api_key",
                target_id=key.id,
                now=now,
                details={"via": "web", "prefix": key.prefix},
            )
            await uow.commit()
        return principal, key.id

    async def principal_for_key(self, key_id: str) -> Principal:
        """The principal behind a session's key, refused once the key is revoked."""
        cached = self._by_id.get(key_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._uow(write=False) as uow:
            key = await uow.api_keys.get(key_id)
            principal = await uow.principals.get(key.principal_id) if key else None
        if key is None or principal is None:
            raise _bad_credentials("the session's API key no longer exists")
        if key.revoked_at is not None or principal.disabled_at is not None:
            raise _bad_credentials("this API key has been revoked")
        self._by_id[key_id] = (time.monotonic() + _CACHE_SECONDS, principal)
        return principal

    async def _touch(self, key_id: str, now: Any) -> None:
        async with self._uow() as uow:
            key = await uow.api_keys.get(key_id)
            if key is not None:
                key.last_used_at = now
                await uow.commit()

    def _from_jwt(self, token: str) -> Principal:
        assert self._jwt.key is not None
        try:
            claims = jwt.decode(
                token,
                self._jwt.key,
                algorithms=[self._jwt.algorithm],  # pinned: `none` and confusion attacks fail
                audience=self._jwt.audience,
                issuer=self._jwt.issuer,
                # PyJWT would compare exp, nbf and iat with its own clock; _check_token_times
                # compares them with the one injected clock instead.
                options={
                    "require": ["exp", "iss", "aud", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise _bad_credentials("the token is not valid") from None
        self._check_token_times(claims)
        try:
            role = Role(str(claims.get("role", "")))
        except ValueError:
            raise _bad_credentials("the token carries no valid role claim") from None
        subject = str(claims["sub"])
        return Principal(
            id=f"jwt:{subject}",
            name=str(claims.get("name") or subject),
            email=claims.get("email"),
            role=role,
            kind=PrincipalKind.USER,
            created_at=self._clock(),
        )

    def _check_token_times(self, claims: dict[str, Any]) -> None:
        now = self._clock().timestamp()
        leeway = self._jwt.leeway_seconds
        times: dict[str, float] = {}
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            # bool is an int in Python; `exp: true` is a malformed token, not second 1.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad_credentials(f"the token's {name} claim is not a number")
            times[name] = float(value)
        if now > times["exp"] + leeway:
            raise Unauthenticated("the token has expired", code="token_expired")
        if times.get("nbf", now) > now + leeway:
            raise _bad_credentials("the token is not valid yet")
        if times.get("iat", now) > now + leeway:
            raise _bad_credentials("the token was issued in the future")

    async def create_key(
        self, caller: Caller, *, name: str, role: Role, email: str | None = None
    ) -> IssuedKey:
        """Issue a key for principal `name`, creating the principal on first use."""
        async with self._uow() as uow:
            issued = await self._issue(uow, caller, name=name, role=role, email=email)
            await uow.commit()
        return issued

    async def _issue(
        self, uow: UnitOfWork, caller: Caller, *, name: str, role: Role, email: str | None
    ) -> IssuedKey:
        now = self._clock()
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        principal = await uow.principals.by_name(validate_principal_name(name))
        if principal is None:
            principal = Principal(
                id=new_id("prn", now), name=name, role=role, email=email, created_at=now
            )
            await uow.principals.add(principal)
            await record(
                uow,
                caller,
                action="principal.created",
                target_type="principal",
                target_id=principal.id,
                now=now,
                details={"name": name, "role": role.value},
            )
        elif principal.role is not role:
            raise Conflict(
                f"{name} already exists with role {principal.role}; a key takes its "
                "principal's role",
                code="principal_role_mismatch",
            )
        key = ApiKey(
            id=new_id("key", now),
            principal_id=principal.id,
            name=name,
            prefix=secret[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(secret),
            created_at=now,
        )
        await uow.api_keys.add(key)
        await record(
            uow,
            caller,
            action="api_key.created",
            target_type="api_key",
            target_id=key.id,
            now=now,
            details={"principal": name, "role": role.value, "prefix": key.prefix},
        )
        return IssuedKey(key=key, principal=principal, secret=secret)

    async def list_keys(self) -> list[tuple[ApiKey, Principal | None]]:
        async with self._uow(write=False) as uow:
            keys = await uow.api_keys.all()
            return [(k, await uow.principals.get(k.principal_id)) for k in keys]

    async def revoke_key(self, caller: Caller, key_id: str) -> ApiKey:
        now = self._clock()
        async with self._uow() as uow:
            key = await uow.api_keys.get(key_id)
            if key is None:
                raise NotFound(f"no API key {key_id}", code="api_key_not_found")
            if key.revoked_at is not None:
                raise Conflict(f"API key {key_id} is already revoked", code="api_key_revoked")
            key.revoked_at = now
            await record(
                uow,
                caller,
                action="api_key.revoked",
                target_type="api_key",
                target_id=key.id,
                now=now,
                details={"prefix": key.prefix},
            )
            await uow.commit()
        self._cache = {h: v for h, v in self._cache.items() if v[2].id != key_id}
        self._by_id.pop(key_id, None)
        return key

    async def bootstrap_admin(self) -> IssuedKey | None:
        """On an empty database, create the first admin and its key; afterwards, nothing."""
        try:
            async with self._uow() as uow:
                if await uow.principals.count() > 0:
                    return None
                issued = await self._issue(
                    uow, SYSTEM_CALLER, name="admin", role=Role.ADMIN, email=None
                )
                await uow.commit()
        except Conflict:
            return None  # another process bootstrapped first
        return issued


def validate_principal_name(name: str) -> str:
    if not name or len(name) > 128 or any(c.isspace() or not c.isprintable() for c in name):
        raise ValidationFailed(
            "a principal name is 1-128 printable characters without spaces",
            code="principal_name_invalid",
        )
    return name
