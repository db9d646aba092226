"""The edge's settings: clear messages that name the setting."""

from pathlib import Path

import pytest

from tresor_common.identity import generate_private_key_pem
from tresor_common.settings import SettingsError, load_settings
from tresor_edge.config import GateSettings, TraefikSettings


@pytest.fixture
def gate_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TRESOR_EDGE_AUTH_SERVICE_TOKEN", "a-service-token-long-enough")
    monkeypatch.setenv("TRESOR_EDGE_CSRF_SECRET", "a-csrf-secret-long-enough")
    monkeypatch.setenv("TRESOR_EDGE_IDENTITY_SIGNING_KEY", generate_private_key_pem())
    monkeypatch.setenv("TRESOR_EDGE_PUBLIC_URL", "https://crm.example.de")
    return monkeypatch


def test_lists_are_comma_separated(gate_env: pytest.MonkeyPatch) -> None:
    gate_env.setenv("TRESOR_EDGE_TRUSTED_PROXIES", "10.42.0.0/16, fd00:42::/64")
    assert load_settings(GateSettings).trusted_proxies == ["10.42.0.0/16", "fd00:42::/64"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRESOR_EDGE_TRUSTED_PROXIES", "not-a-network"),
        ("TRESOR_EDGE_IDENTITY_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nnope\n"),
        ("TRESOR_EDGE_CSRF_SECRET", "short"),
        ("TRESOR_EDGE_GATE_LISTEN", "localhost"),
        ("TRESOR_EDGE_PUBLIC_URL", "crm.example.de"),
    ],
)
def test_bad_gate_setting_is_named(gate_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    gate_env.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings(GateSettings)


def test_an_rsa_key_is_not_an_identity_key(gate_env: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    gate_env.setenv("TRESOR_EDGE_IDENTITY_SIGNING_KEY", pem)
    with pytest.raises(SettingsError, match="Ed25519"):
        load_settings(GateSettings)


def test_production_needs_the_public_url(gate_env: pytest.MonkeyPatch) -> None:
    gate_env.delenv("TRESOR_EDGE_PUBLIC_URL")
    with pytest.raises(SettingsError, match="public_url is required"):
        load_settings(GateSettings)
    gate_env.setenv("TRESOR_EDGE_ENVIRONMENT", "development")
    assert load_settings(GateSettings).public_url is None


def test_certificate_needs_its_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    monkeypatch.setenv("TRESOR_EDGE_TLS_CERT_FILE", str(cert))
    with pytest.raises(SettingsError, match="give both or neither"):
        load_settings(TraefikSettings)
    monkeypatch.setenv("TRESOR_EDGE_TLS_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(TraefikSettings)


def test_http_mode_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRESOR_EDGE_HTTP", "sometimes")
    with pytest.raises(SettingsError, match="TRESOR_EDGE_HTTP"):
        load_settings(TraefikSettings)
