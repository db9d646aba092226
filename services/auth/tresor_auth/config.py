"""Settings of the auth service: `TRESOR_AUTH_<NAME>`."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tresor_common.settings import TresorSettings
from tresor_common.urls import check_postgres_url, check_redis_url

PostgresUrl = Annotated[str, AfterValidator(check_postgres_url)]
RedisUrl = Annotated[str, AfterValidator(check_redis_url)]

_PLACEHOLDER = "change-me"


class AuthSettings(TresorSettings):
    model_config = SettingsConfigDict(env_prefix="TRESOR_AUTH_", extra="ignore")

    environment: Literal["development", "production"] = "production"
    listen: str = "127.0.0.1:50051"
    # Runtime role: may read and insert the audit log, never change it.
    database_url: PostgresUrl
    # Owner role that applies migrations at start-up; defaults to database_url.
    migration_database_url: PostgresUrl | None = None
    # Off where a separate step migrates (a Kubernetes init container with --migrate-only).
    migrate_on_start: bool = True
    database_pool_size: int = Field(default=10, ge=1, le=200)
    redis_url: RedisUrl
    redis_key_prefix: str = "tresor:auth:"
    # Tokens of internal callers with every call (crm, backup, tresorctl), comma-separated.
    service_tokens: SecretStr
    # Tokens of the edge gate, which may only log in, authorize and log out.
    gate_tokens: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Platform defaults and limits for sessions (OWASP ASVS level 2).
    idle_timeout_seconds: int = Field(default=30 * 60, ge=1)
    absolute_lifetime_seconds: int = Field(default=12 * 3600, ge=1)
    max_idle_timeout_seconds: int = Field(default=60 * 60, ge=1)
    max_absolute_lifetime_seconds: int = Field(default=12 * 3600, ge=1)
    max_sessions_per_user: int = Field(default=5, ge=1, le=100)
    # The idle timer slides on use, at most once per this many seconds per session.
    idle_slide_granularity_seconds: float = Field(default=1.0, ge=0, le=60)
    # How long an ended session is remembered so that its link answers "expired".
    expired_memory_seconds: int = Field(default=3600, ge=0)

    # Brute force: failures per user name and per client address.
    slowdown_after_failures: int = Field(default=5, ge=1)
    slowdown_step_seconds: float = Field(default=1.0, ge=0)
    slowdown_max_seconds: float = Field(default=5.0, ge=0)
    lockout_after_failures: int = Field(default=10, ge=1)
    lockout_seconds: int = Field(default=15 * 60, ge=1)
    address_lockout_after_failures: int = Field(default=50, ge=1)

    # Argon2id parameters (OWASP: m=19 MiB, t=2, p=1 is the floor).
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=64 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    password_min_length: int = Field(default=12, ge=8)

    # Deadlines for the backing stores: slow is treated like down.
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    database_timeout_seconds: float = Field(default=2.0, gt=0)
    # Authorize refuses when the database has not answered for three heartbeats.
    database_heartbeat_seconds: float = Field(default=1.0, gt=0, le=30)

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected host:port, e.g. 0.0.0.0:50051")
        return value

    @model_validator(mode="after")
    def _check(self) -> "AuthSettings":
        tokens = self.tokens() + self.gate_token_list()
        if not self.tokens():
            raise ValueError("service_tokens: at least one token is needed")
        if any(len(token) < 16 for token in tokens):
            raise ValueError("service_tokens, gate_tokens: each token needs 16 characters or more")
        if self.environment == "production" and any(_PLACEHOLDER in t for t in tokens):
            raise ValueError("service_tokens: the placeholder token is refused in production")
        if self.idle_timeout_seconds > self.max_idle_timeout_seconds:
            raise ValueError("idle_timeout_seconds may not exceed max_idle_timeout_seconds")
        if self.absolute_lifetime_seconds > self.max_absolute_lifetime_seconds:
            raise ValueError(
                "absolute_lifetime_seconds may not exceed max_absolute_lifetime_seconds"
            )
        if self.slowdown_after_failures > self.lockout_after_failures:
            raise ValueError("slowdown_after_failures must not exceed lockout_after_failures")
        return self

    def tokens(self) -> list[str]:
        return _split(self.service_tokens)

    def gate_token_list(self) -> list[str]:
        return _split(self.gate_tokens) if self.gate_tokens else []

    @property
    def migration_url(self) -> str:
        return self.migration_database_url or self.database_url


def _split(value: SecretStr) -> list[str]:
    return [token.strip() for token in value.get_secret_value().split(",") if token.strip()]
