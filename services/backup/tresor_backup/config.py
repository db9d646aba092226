"""Settings of the backup service: `TRESOR_BACKUP_<NAME>`.

The database URLs name a role that can read every row: tables with FORCE ROW LEVEL
SECURITY hide rows from any role that does not bypass RLS. Locally that is the
superuser; in production a dedicated read-only role with BYPASSRLS (and, for
restores, the databases' owner role).
"""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tresor_backup.crypto import parse_operator_key
from tresor_common.settings import TresorSettings
from tresor_common.urls import check_postgres_url

PostgresUrl = Annotated[str, AfterValidator(check_postgres_url)]


class BackupSettings(TresorSettings):
    model_config = SettingsConfigDict(env_prefix="TRESOR_BACKUP_", extra="ignore")

    environment: Literal["development", "production"] = "production"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # -- snapshot --
    # The databases to snapshot, and the targets of `restore` (a role that bypasses RLS).
    auth_database_url: PostgresUrl
    crm_database_url: PostgresUrl
    # The operator's key: 32 random bytes, base64 (`openssl rand -base64 32`); or KEY_FILE.
    key: SecretStr
    # Where pg_dump/pg_restore live when neither PATH nor pgserver has a matching version.
    pg_bin_dir: Path | None = None
    # Snapshot storage: a directory (local disk, mounted volume) or an S3-compatible bucket.
    store: Literal["directory", "s3"] = "directory"
    directory: Path = Path(".data/backups")
    s3_bucket: str = ""
    s3_prefix: str = "snapshots/"
    s3_endpoint_url: str | None = None
    s3_region: str = "eu-central-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    # Local scratch space: staging of S3 uploads. Defaults to the system's temp dir.
    work_dir: Path | None = None
    # Retention.
    keep_daily: int = Field(default=7, ge=0)
    keep_weekly: int = Field(default=4, ge=0)
    keep_monthly: int = Field(default=12, ge=0)

    # -- export --
    # The backup service's gRPC API (snapshots, exports) and the tokens its callers present,
    # comma-separated (the CRM, tresorctl); required to serve.
    listen: str = "127.0.0.1:50053"
    service_tokens: SecretStr | None = None
    # Finished exports (ZIP files) wait here for their download, then are deleted.
    export_directory: Path = Path(".data/exports")
    export_keep_seconds: int = Field(default=24 * 3600, ge=60)
    export_sweep_seconds: float = Field(default=300.0, gt=0)
    export_max_running: int = Field(default=2, ge=1, le=32)
    # The backup export role on the `crm` database: LOGIN, NOBYPASSRLS, SELECT only on
    # documents, document_chunks, contacts, companies, deals (+ EXECUTE current_tenant()).
    # Row-level security keeps each export inside its tenant. Required to serve exports.
    export_crm_database_url: PostgresUrl | None = None
    # The CRM's gRPC API (StreamTenantRecords) and the token the backup presents there.
    crm_grpc_address: str = "127.0.0.1:50052"
    crm_service_token: SecretStr | None = None
    # The auth service: users, the audit log, and where exports are audited.
    auth_address: str = "127.0.0.1:50051"
    auth_service_token: SecretStr | None = None
    auth_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    def service_token_list(self) -> list[str]:
        if self.service_tokens is None:
            return []
        return [t.strip() for t in self.service_tokens.get_secret_value().split(",") if t.strip()]

    @field_validator("key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr) -> SecretStr:
        parse_operator_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _check(self) -> "BackupSettings":
        if self.store == "s3" and not self.s3_bucket:
            raise ValueError("s3_bucket: required when store is s3")
        return self

    def operator_key(self) -> bytes:
        return parse_operator_key(self.key.get_secret_value())

    def database_urls(self) -> dict[str, str]:
        return {"auth": self.auth_database_url, "crm": self.crm_database_url}
