"""Settings of the CRM service: `TRESOR_CRM_<NAME>`."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tresor_common.identity import load_public_key
from tresor_common.settings import TresorSettings
from tresor_common.urls import check_postgres_url

PostgresUrl = Annotated[str, AfterValidator(check_postgres_url)]

_PEM_BLOCK = "-----END PUBLIC KEY-----"


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

    @property
    def migration_url(self) -> str:
        return self.migration_database_url or self.database_url
