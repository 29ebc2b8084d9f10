"""Secrets from HashiCorp Vault's KV v2 engine at start-up, against a loopback peer speaking
Vault's documented read API (`GET /v1/<mount>/data/<path>`, `X-Vault-Token`, the values under
`data.data`): values land in the settings, the environment wins over Vault, the weak-secret
rules apply, and every failure stops start-up with a message that never shows the token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dragon.app import ConfigurationError, check_secrets
from dragon.settings import Profile, Settings
from dragon.vault import VaultError

TOKEN = "hvs.CAESIJ1x3fakeTokenForDragonTests0123456789"
GITHUB_SECRET = "vault-github-webhook-secret-0123456789abcdef"
SECRET_KEY = "vault-console-secret-key-0123456789abcdefghij"


class VaultPeer:
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.tokens_seen: list[str | None] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer.tokens_seen.append(self.headers.get("X-Vault-Token"))
                if self.headers.get("X-Vault-Token") != TOKEN:
                    self._answer(403, {"errors": ["permission denied"]})
                    return
                found = peer.secrets.get(self.path)
                if found is None:
                    self._answer(404, {"errors": []})
                    return
                self._answer(
                    200,
                    {
                        "request_id": "9b3a6a4f-2e4c-4d1f-8f7e-0c1d2e3f4a5b",
                        "lease_id": "",
                        "renewable": False,
                        "lease_duration": 0,
                        "data": {
                            "data": found,
                            "metadata": {
                                "created_time": "2026-12-01T09:00:00.000000Z",
                                "custom_metadata": None,
                                "deletion_time": "",
                                "destroyed": False,
                                "version": 3,
                            },
                        },
                        "wrap_info": None,
                        "warnings": None,
                        "auth": None,
                    },
                )

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *_args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultPeer]:
    peer = VaultPeer()
    for name in ("DRAGON_GITHUB_WEBHOOK_SECRET", "DRAGON_SECRET_KEY", "DRAGON_VAULT_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRAGON_VAULT_ADDR", peer.url)
    monkeypatch.setenv("DRAGON_VAULT_TOKEN", TOKEN)
    monkeypatch.setenv("DRAGON_VAULT_PATH", "secret/dragon")
    yield peer
    peer.stop()


def build() -> Settings:
    return Settings(_env_file=None)


def test_secrets_come_from_vault_by_setting_or_variable_name(vault: VaultPeer) -> None:
    vault.secrets["/v1/secret/data/dragon"] = {
        "github_webhook_secret": GITHUB_SECRET,
        "DRAGON_SECRET_KEY": SECRET_KEY,
        "some_other_program": "left alone",
    }
    settings = build()
    assert settings.github_webhook_secret is not None
    assert settings.github_webhook_secret.get_secret_value() == GITHUB_SECRET
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == SECRET_KEY
    assert vault.tokens_seen == [TOKEN]


def test_the_environment_wins_over_vault(vault: VaultPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.secrets["/v1/secret/data/dragon"] = {"github_webhook_secret": GITHUB_SECRET}
    monkeypatch.setenv("DRAGON_GITHUB_WEBHOOK_SECRET", "from-the-environment-0123456789abcdef")
    settings = build()
    assert settings.github_webhook_secret is not None
    assert settings.github_webhook_secret.get_secret_value().startswith("from-the-environment")


def test_a_weak_secret_from_vault_is_refused_in_prod(vault: VaultPeer) -> None:
    vault.secrets["/v1/secret/data/dragon"] = {"secret_key": "changeme"}
    settings = build().model_copy(update={"profile": Profile.PROD})
    with pytest.raises(ConfigurationError) as refused:
        check_secrets(settings)
    assert any("DRAGON_SECRET_KEY" in p for p in refused.value.problems)


def test_the_token_can_come_from_a_file(
    vault: VaultPeer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    vault.secrets["/v1/secret/data/dragon"] = {"secret_key": SECRET_KEY}
    token_file = tmp_path / "vault-token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.delenv("DRAGON_VAULT_TOKEN")
    monkeypatch.setenv("DRAGON_VAULT_TOKEN_FILE", str(token_file))
    assert build().secret_key is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DRAGON_VAULT_TOKEN": "hvs.not-the-right-token-000000000000"}, "refused the token"),
        ({"DRAGON_VAULT_PATH": "secret/elsewhere"}, "no secret at secret/elsewhere"),
        ({"DRAGON_VAULT_PATH": "nomount"}, "`<mount>/<path>`"),
        ({"DRAGON_VAULT_ADDR": "http://127.0.0.1:9"}, "unreachable"),
    ],
    ids=["bad-token", "missing-path", "bad-path", "unreachable"],
)
def test_every_vault_failure_stops_start_up_without_showing_the_token(
    vault: VaultPeer, monkeypatch: pytest.MonkeyPatch, change: dict[str, str], message: str
) -> None:
    vault.secrets["/v1/secret/data/dragon"] = {"secret_key": SECRET_KEY}
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(VaultError) as failed:
        build()
    assert message in str(failed.value)
    assert "hvs." not in str(failed.value)


def test_a_non_string_value_is_refused(vault: VaultPeer) -> None:
    vault.secrets["/v1/secret/data/dragon"] = {"secret_key": 12345}
    with pytest.raises(VaultError, match="not a non-empty string"):
        build()
