"""Secrets from HashiCorp Vault's KV version 2 engine, read once when settings are built.

`DRAGON_VAULT_ADDR` (https://vault:8200), `DRAGON_VAULT_TOKEN` or `DRAGON_VAULT_TOKEN_FILE`, and
`DRAGON_VAULT_PATH` (`<mount>/<path>`, e.g. `secret/dragon`) name one secret; its keys are
Dragon's secret settings, by setting name (`github_webhook_secret`) or variable name
(`DRAGON_GITHUB_WEBHOOK_SECRET`). A value set in the environment or a `_FILE` wins over Vault's,
and the weak-secret rules apply to Vault's values as to any other. Read with Vault's documented
API: `GET /v1/<mount>/data/<path>` with `X-Vault-Token`, the values under `data.data`.

This runs before the event loop (settings are built first), so a blocking request is right here.
Errors name the address and path, never the token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

_TIMEOUT_SECONDS = 5.0


class VaultError(ValueError):
    """Vault was configured but the secret could not be read: start-up stops with this."""


def vault_token(environ: Mapping[str, str]) -> str | None:
    token = environ.get("DRAGON_VAULT_TOKEN")
    path = environ.get("DRAGON_VAULT_TOKEN_FILE")
    if token and path:
        raise VaultError("set DRAGON_VAULT_TOKEN or DRAGON_VAULT_TOKEN_FILE, not both")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise VaultError(
                f"DRAGON_VAULT_TOKEN_FILE cannot be read ({type(exc).__name__})"
            ) from None
    return token or None


def read_secrets(
    environ: Mapping[str, str],
    *,
    names: Iterable[str],
    transport: httpx.BaseTransport | None = None,
) -> dict[str, str]:
    """The Vault secret's values for the settings in `names`; {} when Vault is not configured."""
    address = environ.get("DRAGON_VAULT_ADDR")
    secret_path = environ.get("DRAGON_VAULT_PATH")
    if not address and not secret_path:
        return {}
    if not address or not secret_path:
        raise VaultError("DRAGON_VAULT_ADDR and DRAGON_VAULT_PATH go together")
    token = vault_token(environ)
    if token is None:
        raise VaultError("DRAGON_VAULT_ADDR is set: set DRAGON_VAULT_TOKEN or its _FILE too")
    mount, _, path = secret_path.strip("/").partition("/")
    if not mount or not path:
        raise VaultError("DRAGON_VAULT_PATH is `<mount>/<path>`, e.g. secret/dragon")
    where = f"{address.rstrip('/')}/v1/{mount}/data/{path}"
    try:
        with httpx.Client(timeout=_TIMEOUT_SECONDS, transport=transport) as http:
            response = http.get(where, headers={"X-Vault-Token": token})
    except httpx.HTTPError as exc:
        raise VaultError(f"Vault at {address} is unreachable ({type(exc).__name__})") from None
    if response.status_code in (401, 403):
        raise VaultError(f"Vault refused the token for {secret_path} ({response.status_code})")
    if response.status_code == 404:
        raise VaultError(f"Vault has no secret at {secret_path} (KV version 2 at `{mount}`?)")
    if response.status_code != 200:
        raise VaultError(f"Vault answered {response.status_code} for {secret_path}")
    return _values(response, names=set(names), secret_path=secret_path)


def _values(response: httpx.Response, *, names: set[str], secret_path: str) -> dict[str, str]:
    try:
        body: Any = response.json()
        data = body["data"]["data"]
    except (ValueError, KeyError, TypeError):
        raise VaultError(f"Vault's answer for {secret_path} is not a KV v2 secret") from None
    if not isinstance(data, dict):
        raise VaultError(f"Vault's answer for {secret_path} is not a KV v2 secret")
    found: dict[str, str] = {}
    for key, value in data.items():
        name = str(key).lower().removeprefix("dragon_")
        if name not in names:
            continue  # a shared secret may hold other programs' keys too
        if not isinstance(value, str) or not value.strip():
            raise VaultError(f"Vault's {key} at {secret_path} is not a non-empty string")
        found[name] = value
    return found
