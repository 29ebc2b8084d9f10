"""Dragon's settings: environment variables prefixed DRAGON_, or a .env file.

Built once by app.py or cli.py and passed down; nothing reads the environment at import time.
Every field is listed, with its default, in README.md's settings table.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from limits import RateLimitItem, parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dragon.vault import read_secrets

WEAK_SECRET_VALUES = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "commander-token",
        "password",
        "admin",
        "dragon",
        "test",
        "token",
        "default",
        "example",
    }
)
MIN_SECRET_BYTES = 32


class SecretFileError(ValueError):
    """A `DRAGON_<NAME>_FILE` setting that cannot be used: unreadable, empty, or set alongside
    `DRAGON_<NAME>` (which of the two is meant would be a guess)."""


class SecretFileSource(PydanticBaseSettingsSource):
    """Secrets read from files, as Docker and Kubernetes mount them: `DRAGON_<NAME>_FILE` names
    the file holding `DRAGON_<NAME>`'s value. One trailing newline (editors add it) is dropped."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._environ = dict(os.environ)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in secret_setting_names(self.settings_cls):
            env = f"DRAGON_{name.upper()}"
            path = self._environ.get(f"{env}_FILE")
            if not path:
                continue
            if self._environ.get(env):
                raise SecretFileError(f"set {env} or {env}_FILE, not both")
            try:
                value = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SecretFileError(
                    f"{env}_FILE names a file that cannot be read ({type(exc).__name__})"
                ) from None
            value = value.removesuffix("\n").removesuffix("\r")
            if not value.strip():
                raise SecretFileError(f"{env}_FILE names an empty file")
            found[name] = value
        return found


class VaultSource(PydanticBaseSettingsSource):
    """Secrets from HashiCorp Vault (KV v2) when DRAGON_VAULT_ADDR is set (dragon.vault)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._environ = dict(os.environ)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        names = [n for n in secret_setting_names(self.settings_cls) if n != "vault_token"]
        return dict(read_secrets(self._environ, names=names))


def secret_setting_names(settings_cls: type[BaseSettings]) -> list[str]:
    """The settings that hold secrets, each of which can also come from `DRAGON_<NAME>_FILE`:
    every SecretStr, and the database URL (its password)."""
    return [
        name
        for name, field in settings_cls.model_fields.items()
        if name == "database_url"
        or (field.annotation is not None and "SecretStr" in str(field.annotation))
    ]


# The drivers Dragon ships, by the schemes people paste: a libpq-style `postgres://` or
# `postgresql://` URL means asyncpg, a bare `sqlite://` means aiosqlite.
_STORE_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def store_url(value: str) -> str:
    """The store URL with the driver Dragon ships for its scheme; any other driver is refused
    by name (the message never repeats the URL, which may hold a password)."""
    scheme, separator, rest = value.partition("://")
    driver = _STORE_DRIVERS.get(scheme.lower()) if separator else None
    if driver is None:
        shown = scheme if separator else "no scheme"
        raise ValueError(
            f"the store URL's scheme ({shown[:40]}) is not one Dragon can use: write "
            "postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///path/to/dragon.db"
        )
    return f"{driver}://{rest}"


class Profile(StrEnum):
    DEV = "dev"
    PROD = "prod"


def proxy_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DRAGON_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    profile: Profile = Field(Profile.DEV, description="dev warns about weak secrets; prod refuses")
    database_url: str = Field(
        "sqlite+aiosqlite:///var/dragon.db", description="SQLAlchemy async URL of the store"
    )
    db_pool_size: int = Field(10, ge=1, le=200, description="connections per process")
    db_echo: bool = Field(False, description="log every SQL statement (development only)")
    host: str = Field("127.0.0.1", description="address `dragon serve` binds")
    port: int = Field(8000, ge=1, le=65535, description="port `dragon serve` binds")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="lowest level logged"
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="json lines for machines, console for people"
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body the API accepts"
    )
    secret_key: SecretStr | None = Field(
        None, description="signs console sessions and CSRF tokens; required in prod"
    )
    jwt_algorithm: Literal[
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "EdDSA"
    ] = Field("HS256", description="the only algorithm accepted on bearer JWTs")
    jwt_secret: SecretStr | None = Field(
        None, description="HS* shared secret or the PEM public key; unset disables JWT auth"
    )
    jwt_issuer: str = Field("dragon", description="required `iss` claim")
    jwt_audience: str = Field("dragon-api", description="required `aud` claim")
    expiry_sweep_seconds: float = Field(
        15.0, gt=0, description="how often pending decisions past their deadline are expired"
    )
    github_webhook_secret: SecretStr | None = Field(
        None, description="GitHub webhook secret; two comma-separated values during rotation"
    )
    gitlab_webhook_token: SecretStr | None = Field(
        None, description="GitLab webhook token (X-Gitlab-Token); comma-separated for rotation"
    )
    jenkins_webhook_secret: SecretStr | None = Field(
        None, description="Jenkins HMAC secret or bearer token; comma-separated for rotation"
    )
    alertmanager_token: SecretStr | None = Field(
        None, description="bearer token Alertmanager sends (http_config.authorization)"
    )
    webhook_max_body_bytes: int = Field(
        5 * 1024 * 1024, ge=1024, description="largest webhook body accepted (413 above it)"
    )
    alert_grouping_labels: str = Field(
        "alertname,service,namespace",
        description="labels that group alerts into one incident, comma-separated",
    )
    delivery_max_attempts: int = Field(
        5, ge=1, le=50, description="processing attempts before a delivery goes to dead-letter"
    )
    worker_poll_seconds: float = Field(
        1.0, gt=0, description="how often the embedded worker looks for due deliveries"
    )
    worker_enabled: bool = Field(
        True, description="run the delivery worker inside the server process (embedded mode)"
    )
    rate_limits: str = Field(
        "playground=10/hour,approvals=20/hour,generate=50/hour",
        description="requests allowed per route scope, comma-separated `scope=rate`",
    )
    notifications_file: str | None = Field(
        None, description="YAML file of notification channels and routes; unset sends nothing"
    )
    slack_signing_secret: SecretStr | None = Field(
        None, description="verifies Slack interactivity requests (Approve/Reject buttons)"
    )
    slack_bot_token: SecretStr | None = Field(
        None, description="Slack bot token (xoxb-...) for chat.postMessage, chat.update, users.info"
    )
    slack_api_url: str = Field("https://slack.com/api", description="Slack Web API base URL")
    notification_max_attempts: int = Field(
        6, ge=1, le=50, description="delivery attempts per notification before it is failed"
    )
    notification_poll_seconds: float = Field(
        2.0, gt=0, description="how often the notification worker looks for work"
    )
    notification_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="timeout of one call to a notification channel"
    )
    approval_remind_before_seconds: float = Field(
        900.0, ge=0, description="remind approvers this long before a pending decision expires"
    )
    approval_escalate_before_seconds: float = Field(
        300.0, ge=0, description="escalate to the next route this long before expiry"
    )
    bootstrap_admin: bool = Field(
        True, description="create and print an admin API key on the first start of an empty store"
    )
    session_idle_minutes: int = Field(
        30, ge=1, le=24 * 60, description="console sessions end after this long without a request"
    )
    session_max_hours: int = Field(
        12, ge=1, le=24 * 30, description="console sessions end this long after login, whatever"
    )
    cors_origins: str = Field(
        "", description="origins allowed to call the API from a browser, comma-separated"
    )
    forwarded_allow_ips: str = Field(
        "",
        description="proxies (addresses or networks, comma-separated; `*` for any) whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed; empty believes none",
    )
    live_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="how often a process with a console watching looks for changes to push live",
    )
    job_engine: Literal["auto", "inbox", "procrastinate"] = Field(
        "auto",
        description="what runs delivery processing: procrastinate (PostgreSQL only) or the "
        "inbox itself; auto picks procrastinate on PostgreSQL and the inbox on SQLite",
    )
    worker_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="jobs one procrastinate worker process runs at once; one job drains "
        "everything due and the next waits, gathering the batches stored meanwhile, so more "
        "only adds jobs (docs/decisions/0022)",
    )
    worker_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="how far `dragon worker` lowers its CPU priority (nice) when it starts: on "
        "a host it shares with API processes, accepting deliveries then goes first and "
        "processing catches up",
    )

    @model_validator(mode="after")
    def _job_engine_fits_the_store(self) -> Settings:
        if self.job_engine == "procrastinate" and not self.database_url.startswith("postgresql"):
            raise ValueError(
                "DRAGON_JOB_ENGINE=procrastinate needs a PostgreSQL DRAGON_DATABASE_URL"
            )
        return self

    def uses_procrastinate(self) -> bool:
        """Whether delivery processing runs on procrastinate jobs (see docs/decisions/0011)."""
        if self.job_engine == "auto":
            return self.database_url.startswith("postgresql")
        return self.job_engine == "procrastinate"

    secret_min_bytes: int = Field(
        MIN_SECRET_BYTES, ge=8, le=1024, description="shortest secret accepted"
    )
    weak_secrets: str = Field(
        "", description="more refused secret values, comma-separated (the built-in list stays)"
    )
    redis_url: SecretStr | None = Field(
        None, description="redis:// URL for shared rate limits and idempotency; unset: in-process"
    )
    redis_key_prefix: str = Field(
        "dragon:", min_length=1, description="prefix of every Redis key Dragon writes"
    )
    redis_timeout_seconds: float = Field(
        0.25, gt=0, le=10, description="longest wait for one Redis command before falling back"
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="deadline of one request; past it the answer is 503"
    )
    startup_timeout_seconds: float = Field(
        120.0,
        ge=0,
        description="how long start-up retries an unusable store (backoff) before it gives up; 0: "
        "forever",
    )
    shutdown_timeout_seconds: float = Field(
        20.0, ge=0, le=600, description="how long shut-down waits for running actions to finish"
    )
    breaker_report_seconds: float = Field(
        5.0, gt=0, le=60, description="how often each process reports its breakers to Redis"
    )
    db_pool_timeout_seconds: float = Field(
        2.0, gt=0, le=60, description="longest wait for a free database connection (then 503)"
    )
    slow_query_ms: float = Field(
        250.0, ge=0, description="queries slower than this are logged with their duration"
    )
    idempotency_ttl_seconds: int = Field(
        86400, ge=60, description="how long an Idempotency-Key and its stored response are kept"
    )
    readiness_cache_seconds: float = Field(
        2.0, ge=0, le=60, description="how long /readyz reuses its dependency checks"
    )
    metrics_token: SecretStr | None = Field(
        None, description="bearer token /metrics requires; unset: /metrics is public"
    )
    otel_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint; unset: tracing is off"
    )
    otel_service_name: str = Field("dragon", description="service.name on exported spans")
    # Read by VaultSource before the other settings are built; kept here to be documented.
    vault_addr: str | None = Field(None, description="HashiCorp Vault address for secrets")
    vault_token: SecretStr | None = Field(None, description="Vault token (or its _FILE)")
    vault_path: str | None = Field(None, description="KV v2 secret as `<mount>/<path>`")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
            VaultSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    def refused_secret_values(self) -> frozenset[str]:
        extra = {v.strip().lower() for v in self.weak_secrets.split(",") if v.strip()}
        return WEAK_SECRET_VALUES | extra

    # Triage: the analyzer that proposes a decision for every new incident.
    triage_enabled: bool = Field(
        True, description="triage every new incident in the worker (needs the worker enabled)"
    )
    triage_poll_seconds: float = Field(
        2.0, gt=0, description="how often the worker looks for incidents waiting for triage"
    )
    triage_max_attempts: int = Field(
        5, ge=1, le=50, description="triage attempts per incident before it is given up"
    )
    triage_runbooks: str = Field(
        "", description="alert name to runbook, comma-separated `alertname=runbook` pairs"
    )
    change_freeze: bool = Field(
        False, description="a change freeze is in force: every triage decision scores +30 risk"
    )
    triage_log_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="most of a failed job's log triage reads (its tail)",
    )
    triage_log_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="total time allowed to fetch one job log"
    )
    triage_github_api_url: str = Field(
        "https://api.github.com", description="GitHub REST API base for job logs"
    )
    triage_github_token: SecretStr | None = Field(
        None, description="GitHub token with actions:read, to fetch failed jobs' logs"
    )
    triage_gitlab_url: str = Field(
        "https://gitlab.com", description="GitLab base URL for job traces"
    )
    triage_gitlab_token: SecretStr | None = Field(
        None, description="GitLab token with read_api, to fetch failed jobs' traces"
    )
    triage_jenkins_url: str | None = Field(
        None, description="Jenkins base URL; only builds under it have their consoleText read"
    )
    triage_jenkins_user: str | None = Field(None, description="Jenkins user for consoleText")
    triage_jenkins_token: SecretStr | None = Field(
        None, description="Jenkins API token for consoleText"
    )
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible API base (…/v1); unset: the built-in analyzer only"
    )
    llm_model: str = Field("gpt-4o-mini", description="model name sent to the LLM endpoint")
    llm_api_key: SecretStr | None = Field(None, description="key for the LLM endpoint")
    llm_api_key_header: Literal["authorization", "api-key"] = Field(
        "authorization",
        description="how the key is sent: `Authorization: Bearer` or Azure OpenAI's `api-key`",
    )
    llm_connect_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="connect timeout of one LLM call"
    )
    llm_timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="total timeout of one LLM call"
    )
    llm_max_retries: int = Field(
        2, ge=0, le=10, description="retries of an LLM call on 429 or 5xx, with backoff"
    )
    llm_breaker_threshold: int = Field(
        5, ge=1, le=100, description="consecutive LLM failures that open its circuit breaker"
    )
    llm_breaker_reset_seconds: float = Field(
        30.0, gt=0, description="how long the LLM breaker stays open before one probe"
    )

    actions_enabled: bool = Field(
        True, description="global kill switch: false stops every action from running (audited)"
    )
    actions_dry_run: bool = Field(
        False, description="runs record what they would have done and change nothing"
    )
    run_lease_seconds: float = Field(
        300.0, gt=0, description="how long a worker holds a run before another may take it over"
    )
    run_max_attempts: int = Field(
        5,
        ge=1,
        le=20,
        description="attempts for timeouts, 429, 5xx and takeovers after a worker died",
    )
    run_retention_count: int = Field(
        1000, ge=0, description="finished runs always kept, newest first, by the retention job"
    )
    run_retention_days: int = Field(
        30, ge=1, description="finished runs beyond the kept count are pruned after this age"
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Dragon's address as people reach it, for links"
    )
    http_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="timeout of every call to a vendor's API"
    )
    github_api_url: str = Field("https://api.github.com", description="GitHub's REST API")
    github_git_url: str = Field(
        "https://github.com", description="where `git` clones and pushes GitHub repositories"
    )
    github_token: SecretStr | None = Field(
        None, description="token for GitHub actions; or set the GitHub App settings instead"
    )
    github_app_id: str | None = Field(None, description="GitHub App id (the app JWT's iss)")
    github_app_private_key: SecretStr | None = Field(
        None, description="the GitHub App's PEM private key (RS256)"
    )
    github_app_installation_id: str | None = Field(
        None, description="the installation whose access token Dragon uses"
    )
    gitlab_api_url: str = Field("https://gitlab.com", description="GitLab's address")
    gitlab_git_url: str | None = Field(
        None,
        description="where `git` clones and pushes GitLab projects; unset: DRAGON_GITLAB_API_URL",
    )
    gitlab_token: SecretStr | None = Field(
        None, description="GitLab token (PRIVATE-TOKEN) for GitLab actions; unset: none run"
    )
    jenkins_url: str | None = Field(None, description="Jenkins' address; unset: no Jenkins actions")
    jenkins_user: str | None = Field(None, description="the Jenkins user Dragon builds as")
    jenkins_api_token: SecretStr | None = Field(None, description="that user's Jenkins API token")
    autofix_fixers: str = Field(
        "*=ruff-format",
        description="fixers per repository: `pattern=fixer+fixer,...`, first match wins",
    )

    @field_validator("database_url")
    @classmethod
    def _store_url_names_a_driver_dragon_ships(cls, value: str) -> str:
        return store_url(value)

    @field_validator("rate_limits")
    @classmethod
    def _rates_parse(cls, value: str) -> str:
        parse_rate_limits(value)
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        for part in proxy_list(value):
            if part != "*":
                try:
                    ipaddress.ip_network(part, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{part!r} is not an address or network, for example 10.0.0.0/8"
                    ) from None
        return value

    def trusted_proxies(self) -> list[str]:
        return proxy_list(self.forwarded_allow_ips)

    def rate_limit_items(self) -> dict[str, RateLimitItem]:
        return parse_rate_limits(self.rate_limits)

    def secret_problems(self) -> list[str]:
        """Every weak or missing secret, each with how to fix it."""
        problems: list[str] = []
        required = {"secret_key": self.secret_key}
        optional: dict[str, SecretStr | None] = {
            "github_webhook_secret": self.github_webhook_secret,
            "gitlab_webhook_token": self.gitlab_webhook_token,
            "jenkins_webhook_secret": self.jenkins_webhook_secret,
            "alertmanager_token": self.alertmanager_token,
            "metrics_token": self.metrics_token,
            "slack_signing_secret": self.slack_signing_secret,
        }
        if self.jwt_algorithm.startswith("HS"):
            optional["jwt_secret"] = self.jwt_secret
        refused = self.refused_secret_values()
        for name, value in {**required, **optional}.items():
            env = f"DRAGON_{name.upper()}"
            fix = (
                f"set {env} to at least {self.secret_min_bytes} random bytes, for example the "
                "output of `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
            if value is None:
                if name in required:
                    problems.append(f"{env} is not set; {fix}")
                continue
            # Each of a rotation's values must be strong; surrounding whitespace adds no secrecy.
            for raw in secret_list(value) or ("",):
                if raw.lower() in refused:
                    problems.append(f"{env} is a well-known value; {fix}")
                elif len(raw.encode()) < self.secret_min_bytes:
                    problems.append(f"{env} is shorter than {self.secret_min_bytes} bytes; {fix}")
        return problems


def origin_list(value: str) -> list[str]:
    return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]


def secret_list(value: SecretStr | None) -> tuple[str, ...]:
    """A comma-separated secret setting as its values (two during a rotation)."""
    if value is None:
        return ()
    return tuple(part.strip() for part in value.get_secret_value().split(",") if part.strip())


def runbook_map(text: str) -> dict[str, str]:
    """`DRAGON_TRIAGE_RUNBOOKS` as a mapping: `HighErrorRate=restart-web,DiskFull=clean-disk`."""
    pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
    return {name.strip(): book.strip() for name, book in pairs if name.strip() and book.strip()}


def parse_rate_limits(spec: str) -> dict[str, RateLimitItem]:
    """`scope=rate,scope=rate`, rates as the limits library writes them (`10/hour`)."""
    rates: dict[str, RateLimitItem] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        scope, sep, rate = part.partition("=")
        if not sep or not scope.strip():
            raise ValueError(f"{part!r} is not `scope=rate`, for example `playground=10/hour`")
        try:
            rates[scope.strip()] = parse(rate.strip())
        except ValueError:
            raise ValueError(
                f"{rate.strip()!r} is not a rate, for example `10/hour` or `50 per minute`"
            ) from None
    return rates
