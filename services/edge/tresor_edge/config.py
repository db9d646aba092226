"""Settings of the edge: `TRESOR_EDGE_<NAME>`, one class for Traefik and one for the gate."""

import ipaddress
from pathlib import Path
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

from tresor_common.identity import load_private_key
from tresor_common.settings import TresorSettings


def _check_host_port(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected host:port or :port, e.g. :8443")
    return value


def _check_http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


HostPort = Annotated[str, AfterValidator(_check_host_port)]
# Lists in the environment are written `a,b,c`.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_separated)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]


class TraefikSettings(TresorSettings):
    """What varies in Traefik's static and dynamic configuration."""

    model_config = SettingsConfigDict(env_prefix="TRESOR_EDGE_", extra="ignore")

    https_address: HostPort = ":8443"
    # redirect: permanent redirect to HTTPS; off: no plain HTTP port at all.
    http: Literal["redirect", "off"] = "redirect"
    http_address: HostPort = ":8080"
    # The customer's certificate and key (PEM); empty: a generated self-signed one.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_hostnames: CommaList = Field(default_factory=lambda: ["localhost"])
    data_dir: Path = Path(".data/edge")
    gate_url: HttpUrl = "http://127.0.0.1:8081"
    upstream_url: HttpUrl = "http://127.0.0.1:8000"
    hsts_seconds: int = Field(default=63072000, ge=0)
    # Empty: JSON access log on stdout.
    access_log_file: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    traefik_binary: str = "traefik"

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> "TraefikSettings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file: give both or neither")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"{path}: no such file")
        return self


class GateSettings(TresorSettings):
    """The gate: ForwardAuth answers, login and logout pages."""

    model_config = SettingsConfigDict(env_prefix="TRESOR_EDGE_", extra="ignore")

    environment: Literal["development", "production"] = "production"
    gate_listen: HostPort = "127.0.0.1:8081"
    auth_address: str = "127.0.0.1:50051"
    auth_service_token: SecretStr
    # A slow auth service counts as a denial.
    auth_deadline_seconds: float = Field(default=1.5, gt=0, le=30)
    # Ed25519 private key (PEM) that signs the identity for upstream services.
    identity_signing_key: SecretStr
    # HMAC key for the login and logout forms' CSRF tokens.
    csrf_secret: SecretStr
    # The address users type, e.g. https://crm.example.de. ForwardAuth denials must redirect
    # to an absolute URL; without this setting it is built from X-Forwarded-Host.
    public_url: HttpUrl | None = None
    # Who may call the gate: Traefik's addresses. Anyone else is refused.
    trusted_proxies: CommaList = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _production_needs_a_public_url(self) -> "GateSettings":
        if self.environment == "production" and not self.public_url:
            raise ValueError("public_url is required in production (the address users type)")
        return self

    @field_validator("identity_signing_key")
    @classmethod
    def _key_loads(cls, value: SecretStr) -> SecretStr:
        try:
            load_private_key(value.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"not an Ed25519 private key in PEM form: {exc}") from None
        return value

    @field_validator("csrf_secret", "auth_service_token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("at least 16 characters")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address or CIDR range") from None
        return value
