"""Settings of the CRM service: `TRESOR_CRM_<NAME>`."""

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import NoDecode, SettingsConfigDict

from tresor_common.identity import load_public_key
from tresor_common.settings import TresorSettings
from tresor_common.urls import check_postgres_url

PostgresUrl = Annotated[str, AfterValidator(check_postgres_url)]

_PEM_BLOCK = "-----END PUBLIC KEY-----"
_PLACEHOLDER = "change-me"


def _split_pem_blocks(value: object) -> object:
    """Several public keys may be given one after the other (key rotation)."""
    if isinstance(value, str):
        blocks = [block + _PEM_BLOCK for block in value.split(_PEM_BLOCK) if block.strip()]
        return [block.strip() + "\n" for block in blocks]
    return value


class CrmSettings(TresorSettings):
    model_config = SettingsConfigDict(env_prefix="TRESOR_CRM_", extra="ignore")

    environment: Literal["development", "production"] = "production"
    listen: str = "127.0.0.1:8000"
    # Runtime role: not a superuser, no BYPASSRLS; a member of tresor_crm_runtime.
    database_url: PostgresUrl
    migration_database_url: PostgresUrl | None = None
    migrate_on_start: bool = True
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_timeout_seconds: float = Field(default=5.0, gt=0)
    # The gate's Ed25519 public key(s), PEM; identities signed by anything else are refused.
    identity_public_keys: Annotated[list[str], NoDecode, BeforeValidator(_split_pem_blocks)]
    max_document_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    page_size: int = Field(default=25, ge=5, le=200)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # The gRPC API for internal services (exports), served next to the HTTP app.
    grpc_enabled: bool = False
    grpc_listen: str = "127.0.0.1:50052"
    # Tokens that internal callers (backup, tresorctl) present, comma-separated;
    # required when gRPC is enabled.
    grpc_service_tokens: SecretStr | None = None

    # The auth service, where document downloads, exports and erasures are written to the
    # tenant's audit log (RecordAuditEvent). Without a token every audited action is refused
    # with 503: nothing is downloaded unaudited.
    auth_address: str = "127.0.0.1:50051"
    auth_service_token: SecretStr | None = None
    auth_timeout_seconds: float = Field(default=3.0, gt=0, le=60)

    # -- backup --
    # The backup service, where a tenant admin's exports are started, watched and downloaded
    # (StartExport, ExportStatus, OpenExport). Optional: without both the address and the
    # token the export pages say that exports are not available.
    backup_address: str | None = None
    backup_service_token: SecretStr | None = None
    # Each unary call, and each wait for the next chunk of a download.
    backup_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("identity_public_keys")
    @classmethod
    def _keys_load(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one Ed25519 public key (PEM) is needed")
        for pem in value:
            try:
                load_public_key(pem)
            except ValueError as exc:
                raise ValueError(f"not an Ed25519 public key in PEM form: {exc}") from None
        return value

    @field_validator("listen", "grpc_listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected host:port, e.g. 0.0.0.0:50052")
        return value

    @model_validator(mode="after")
    def _check_grpc(self) -> "CrmSettings":
        if not self.grpc_enabled:
            return self
        tokens = self.grpc_tokens()
        if not tokens:
            raise ValueError("grpc_service_tokens: at least one token is needed with gRPC enabled")
        if any(len(token) < 16 for token in tokens):
            raise ValueError("grpc_service_tokens: each token needs at least 16 characters")
        if self.environment == "production" and any(_PLACEHOLDER in t for t in tokens):
            raise ValueError("grpc_service_tokens: the placeholder token is refused in production")
        return self

    def grpc_tokens(self) -> list[str]:
        if self.grpc_service_tokens is None:
            return []
        raw = self.grpc_service_tokens.get_secret_value()
        return [token.strip() for token in raw.split(",") if token.strip()]

    @property
    def migration_url(self) -> str:
        return self.migration_database_url or self.database_url
