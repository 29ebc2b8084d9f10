"""Constant-time checks of webhook credentials: HMAC-SHA256 body signatures and shared tokens.

Every comparison goes through hmac.compare_digest. Refusal messages never contain a secret or
what the sender presented. Several secrets may be configured at once so that one can be
rotated without refusing deliveries signed with the other.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from dragon.domain.errors import Unauthenticated

_SHA256_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


def usable_secrets(secrets: Sequence[str], *, source: str) -> list[bytes]:
    """The configured secrets as bytes; refuses everything when none is configured, so that a
    missing setting can never mean "accept unsigned deliveries"."""
    usable = [secret.encode() for secret in secrets if secret]
    if not usable:
        raise Unauthenticated(
            f"no webhook secret is configured for {source}; its deliveries are refused",
            code="webhook_secret_missing",
        )
    return usable


def hmac_sha256_hex(secret: str | bytes, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body`: what GitHub sends after `sha256=`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def signature_matches(signature: str | None, *, body: bytes, secrets: Sequence[bytes]) -> bool:
    """Whether `signature` is `sha256=<64 hex digits>` and equals the HMAC of `body` under one
    of `secrets`. Malformed values (missing, other algorithm, truncated, not hex) never match."""
    if signature is None:
        return False
    found = _SHA256_SIGNATURE.fullmatch(signature.strip())
    if found is None:
        return False
    presented = bytes.fromhex(found.group(1))
    # Every secret is compared, so timing does not tell which one matched.
    # hmac.digest: OpenSSL's one-shot HMAC, without building an HMAC object per delivery.
    results = [hmac.compare_digest(presented, hmac.digest(key, body, "sha256")) for key in secrets]
    return any(results)


def token_matches(token: str | None, *, secrets: Sequence[bytes]) -> bool:
    """Whether `token` equals one of `secrets` exactly (no trimming, no case folding)."""
    if not token:
        return False
    presented = token.encode()
    results = [hmac.compare_digest(presented, key) for key in secrets]
    return any(results)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
