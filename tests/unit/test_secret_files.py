"""Secrets from files (`DRAGON_<NAME>_FILE`, as Docker and Kubernetes mount them) and the
configurable weak-secret rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dragon.settings import SecretFileError, Settings, secret_setting_names

STRONG = "k" * 16 + "Qz7-vLx_93mPa0rTy2Ws"


@pytest.fixture(autouse=True)
def no_dragon_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRAGON_"):
            monkeypatch.delenv(name)


def test_every_secret_setting_can_come_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = secret_setting_names(Settings)
    expected = {"secret_key", "jwt_secret", "github_webhook_secret", "redis_url", "database_url"}
    assert expected <= set(names)
    # Each file holds a value of its own; the store URL must still be a URL.
    written = {name: f"{name}-{STRONG}" for name in names}
    written["database_url"] = f"postgresql+asyncpg://dragon:{STRONG}@db/dragon"
    for name, value in written.items():
        path = tmp_path / name
        path.write_text(f"{value}\n", encoding="utf-8")
        monkeypatch.setenv(f"DRAGON_{name.upper()}_FILE", str(path))

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    for name in names:
        value = getattr(settings, name)
        plain = value if isinstance(value, str) else value.get_secret_value()
        assert plain == written[name]  # the trailing newline dropped


def test_a_secret_set_both_ways_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(STRONG, encoding="utf-8")
    monkeypatch.setenv("DRAGON_SECRET_KEY_FILE", str(path))
    monkeypatch.setenv("DRAGON_SECRET_KEY", STRONG)

    with pytest.raises(SecretFileError, match="set DRAGON_SECRET_KEY or DRAGON_SECRET_KEY_FILE"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_missing_secret_file_is_refused_without_echoing_anything_of_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DRAGON_JWT_SECRET_FILE", str(tmp_path / "absent"))

    with pytest.raises(SecretFileError, match="cannot be read"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_an_empty_secret_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_text("\n", encoding="utf-8")
    monkeypatch.setenv("DRAGON_SECRET_KEY_FILE", str(path))

    with pytest.raises(SecretFileError, match="empty file"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_minimum_secret_length_is_configurable() -> None:
    longer = Settings(_env_file=None, secret_key=STRONG, secret_min_bytes=64)  # type: ignore[call-arg]

    (problem,) = longer.secret_problems()
    assert problem.startswith("DRAGON_SECRET_KEY is shorter than 64 bytes;")


def test_more_refused_values_can_be_configured() -> None:
    house = "our-house-secret-everyone-knows-0123456789"
    refused = Settings(  # type: ignore[call-arg]
        _env_file=None, secret_key=house, weak_secrets=f"something, {house.upper()}"
    )
    builtin = Settings(_env_file=None, secret_key="changeme", weak_secrets="x")  # type: ignore[call-arg]

    assert refused.secret_problems()[0].startswith("DRAGON_SECRET_KEY is a well-known value;")
    assert builtin.secret_problems()[0].startswith("DRAGON_SECRET_KEY is a well-known value;")
