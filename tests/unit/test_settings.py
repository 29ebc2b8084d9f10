"""Specification of Dragon's settings: secrets are checked, prod refuses weak ones and says how to
fix every problem at once, and nothing is read from the environment at import time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from dragon.app import ConfigurationError, check_secrets
from dragon.settings import MIN_SECRET_BYTES, Profile, Settings

STRONG = "k" * 16 + "Qz7-vLx_93mPa0rTy2Ws"  # 36 bytes, not a well-known value
FIX_HINT = "secrets.token_urlsafe(48)"
DRAGON_SCRIPT = Path(sys.executable).with_name("dragon")


@pytest.fixture(autouse=True)
def no_dragon_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRAGON_"):
            monkeypatch.delenv(name)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGON_")}
    return {**env, **extra}


# What counts as a problem


def test_strong_secret_key_has_no_problems() -> None:
    assert settings(profile="prod", secret_key=STRONG).secret_problems() == []


def test_missing_secret_key_is_a_problem_with_its_fix() -> None:
    (problem,) = settings(profile="prod").secret_problems()

    assert problem.startswith("DRAGON_SECRET_KEY is not set; set DRAGON_SECRET_KEY to at least 32")
    assert FIX_HINT in problem


@pytest.mark.parametrize("weak", ["changeme", "commander-token", "secret", "  ChangeMe  ", "admin"])
def test_well_known_secret_key_is_a_problem(weak: str) -> None:
    (problem,) = settings(profile="prod", secret_key=weak).secret_problems()

    assert problem.startswith("DRAGON_SECRET_KEY is a well-known value;")
    assert FIX_HINT in problem


@pytest.mark.parametrize("length", [1, 16, MIN_SECRET_BYTES - 1])
def test_short_secret_key_is_a_problem(length: int) -> None:
    (problem,) = settings(profile="prod", secret_key="q" * length).secret_problems()

    assert problem.startswith("DRAGON_SECRET_KEY is shorter than 32 bytes;")


def test_length_is_counted_in_bytes_not_characters() -> None:
    dragons = "🐉" * 8  # 8 characters, 32 bytes in UTF-8

    assert settings(secret_key=dragons).secret_problems() == []
    assert (
        settings(secret_key="🐉" * 7 + "abc")
        .secret_problems()[0]
        .startswith("DRAGON_SECRET_KEY is shorter than 32 bytes")
    )


def test_secret_key_padded_with_whitespace_is_measured_without_it() -> None:
    (problem,) = settings(secret_key=" " * 20 + "short" + " " * 20).secret_problems()

    assert problem.startswith("DRAGON_SECRET_KEY is shorter than 32 bytes;")


def test_weak_jwt_secret_is_listed_alongside_a_missing_secret_key() -> None:
    problems = settings(profile="prod", jwt_secret="secret").secret_problems()

    assert [p.split(";")[0] for p in problems] == [
        "DRAGON_SECRET_KEY is not set",
        "DRAGON_JWT_SECRET is a well-known value",
    ]


def test_short_jwt_secret_is_a_problem() -> None:
    problems = settings(secret_key=STRONG, jwt_secret="tooshort").secret_problems()

    assert [p.split(";")[0] for p in problems] == ["DRAGON_JWT_SECRET is shorter than 32 bytes"]


def test_unset_jwt_secret_is_not_a_problem_because_jwt_auth_is_then_off() -> None:
    assert settings(secret_key=STRONG, jwt_secret=None).secret_problems() == []


def test_jwt_public_key_for_asymmetric_algorithms_is_not_judged_as_a_secret() -> None:
    public_key = "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----"

    assert (
        settings(secret_key=STRONG, jwt_algorithm="EdDSA", jwt_secret=public_key).secret_problems()
        == []
    )


def test_secrets_are_not_shown_in_the_settings_repr() -> None:
    shown = repr(settings(secret_key=STRONG, jwt_secret=STRONG + "jwt"))

    assert STRONG not in shown


# What the app does about them


def test_prod_refuses_to_start_and_lists_every_problem() -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_secrets(settings(profile="prod", secret_key="changeme", jwt_secret="short"))

    assert [p.split(";")[0] for p in refused.value.problems] == [
        "DRAGON_SECRET_KEY is a well-known value",
        "DRAGON_JWT_SECRET is shorter than 32 bytes",
    ]
    assert str(refused.value).count("\n") == 1


def test_dev_only_warns_about_each_weak_secret() -> None:
    with structlog.testing.capture_logs() as captured:
        check_secrets(settings(profile="dev", secret_key="changeme", jwt_secret="short"))

    logged = [e for e in captured if e["event"] == "weak_secret"]
    assert [(e["event"], e["log_level"], e["profile"]) for e in logged] == [
        ("weak_secret", "warning", "dev"),
        ("weak_secret", "warning", "dev"),
    ]
    assert logged[0]["problem"].startswith("DRAGON_SECRET_KEY is a well-known value")
    assert logged[1]["problem"].startswith("DRAGON_JWT_SECRET is shorter than 32 bytes")


def test_prod_with_strong_secrets_warns_only_about_receivers_left_without_one() -> None:
    with structlog.testing.capture_logs() as logged:
        check_secrets(
            settings(
                profile=Profile.PROD,
                secret_key=STRONG,
                jwt_secret=STRONG,
                github_webhook_secret=STRONG,
            )
        )

    assert [(e["event"], e["setting"]) for e in logged] == [
        ("webhook_receiver_disabled", "DRAGON_GITLAB_WEBHOOK_TOKEN"),
        ("webhook_receiver_disabled", "DRAGON_JENKINS_WEBHOOK_SECRET"),
        ("webhook_receiver_disabled", "DRAGON_ALERTMANAGER_TOKEN"),
    ]


def test_prod_refuses_a_weak_value_in_a_webhook_secret_rotation() -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_secrets(
            settings(
                profile=Profile.PROD,
                secret_key=STRONG,
                jwt_secret=STRONG,
                github_webhook_secret=f"{STRONG},changeme",
            )
        )
    assert refused.value.problems == [
        "DRAGON_GITHUB_WEBHOOK_SECRET is a well-known value; set DRAGON_GITHUB_WEBHOOK_SECRET to "
        "at least 32 random bytes, for example the output of "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    ]


def test_settings_come_from_dragon_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAGON_PROFILE", "prod")
    monkeypatch.setenv("DRAGON_PORT", "9090")
    monkeypatch.setenv("DRAGON_SECRET_KEY", STRONG)

    built = settings()

    assert (built.profile, built.port) == (Profile.PROD, 9090)
    assert built.secret_key is not None
    assert built.secret_key.get_secret_value() == STRONG


def test_bad_environment_value_is_rejected_when_settings_are_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRAGON_PORT", "not-a-port")

    with pytest.raises(ValidationError) as rejected:
        settings()

    assert rejected.value.errors()[0]["loc"] == ("port",)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://dragon@db:5432/dragon", "postgresql+asyncpg://dragon@db:5432/dragon"),
        ("postgres://dragon@db/dragon", "postgresql+asyncpg://dragon@db/dragon"),
        ("postgresql+asyncpg://dragon@db/dragon", "postgresql+asyncpg://dragon@db/dragon"),
        ("sqlite:///var/dragon.db", "sqlite+aiosqlite:///var/dragon.db"),
        ("sqlite+aiosqlite:///var/dragon.db", "sqlite+aiosqlite:///var/dragon.db"),
    ],
)
def test_a_store_url_gets_the_driver_dragon_ships(given: str, used: str) -> None:
    assert settings(database_url=given).database_url == used


def test_a_postgres_url_without_a_driver_runs_deliveries_on_procrastinate() -> None:
    built = settings(database_url="postgres://dragon@db/dragon")

    assert built.uses_procrastinate()


@pytest.mark.parametrize(
    "given",
    [
        "postgresql+psycopg2://dragon:hunter2-password@db/dragon",
        "mysql://dragon:hunter2-password@db/dragon",
        "dragon:hunter2-password@db/dragon",
    ],
)
def test_a_store_url_with_another_driver_is_refused_without_repeating_it(given: str) -> None:
    with pytest.raises(ValidationError) as rejected:
        settings(database_url=given)

    error = rejected.value.errors()[0]
    assert error["loc"] == ("database_url",)
    assert "postgresql+asyncpg://" in error["msg"]
    assert "hunter2" not in error["msg"]


# The real command


def test_dragon_serve_in_prod_with_a_weak_secret_exits_2_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [str(DRAGON_SCRIPT), "serve"],
        env=clean_environment(
            DRAGON_PROFILE="prod",
            DRAGON_SECRET_KEY="changeme",
            DRAGON_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dragon.db'}",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())  # the terminal may wrap long lines
    assert "Dragon refuses to start in the prod profile:" in said
    assert "- DRAGON_SECRET_KEY is a well-known value; set DRAGON_SECRET_KEY to at least 32" in said
    assert FIX_HINT in said
    assert "changeme" not in said
    assert not (tmp_path / "dragon.db").exists()  # refused before touching the store


def test_importing_the_app_and_cli_reads_no_settings(tmp_path: Path) -> None:
    code = (
        "import dragon.app, dragon.cli\n"
        "from dragon.settings import Settings\n"
        "try:\n"
        "    Settings()\n"
        "except ValueError as exc:\n"
        "    print('settings refused:', type(exc).__name__)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_environment(DRAGON_PORT="not-a-port"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "settings refused: ValidationError\n"
