"""Bad settings stop a service at start-up with a message that names them."""

from pathlib import Path

import pytest

from tresor_auth.config import AuthSettings
from tresor_common.settings import SettingsError, load_settings

GOOD = {
    "TRESOR_AUTH_DATABASE_URL": "postgresql://tresor@db.internal:5432/auth",
    "TRESOR_AUTH_REDIS_URL": "redis://redis.internal:6379/0",
    "TRESOR_AUTH_SERVICE_TOKENS": "a-long-enough-service-token",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_good_settings_load(env: pytest.MonkeyPatch) -> None:
    settings = load_settings(AuthSettings)
    assert settings.idle_timeout_seconds == 1800
    assert settings.absolute_lifetime_seconds == 43200
    assert settings.migration_url == GOOD["TRESOR_AUTH_DATABASE_URL"]


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("TRESOR_AUTH_DATABASE_URL", "mysql://x/y", "TRESOR_AUTH_DATABASE_URL"),
        ("TRESOR_AUTH_REDIS_URL", "http://redis", "TRESOR_AUTH_REDIS_URL"),
        ("TRESOR_AUTH_LISTEN", "nowhere", "TRESOR_AUTH_LISTEN"),
        ("TRESOR_AUTH_IDLE_TIMEOUT_SECONDS", "soon", "TRESOR_AUTH_IDLE_TIMEOUT_SECONDS"),
        ("TRESOR_AUTH_ARGON2_MEMORY_KIB", "64", "TRESOR_AUTH_ARGON2_MEMORY_KIB"),
    ],
)
def test_a_bad_setting_is_named(env: pytest.MonkeyPatch, name: str, value: str, named: str) -> None:
    env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(AuthSettings)
    assert named in str(caught.value)


def test_a_missing_setting_is_named(env: pytest.MonkeyPatch) -> None:
    env.delenv("TRESOR_AUTH_DATABASE_URL")
    with pytest.raises(SettingsError, match="TRESOR_AUTH_DATABASE_URL"):
        load_settings(AuthSettings)


def test_placeholder_token_is_refused_in_production(env: pytest.MonkeyPatch) -> None:
    env.setenv("TRESOR_AUTH_SERVICE_TOKENS", "change-me-change-me-change-me")
    with pytest.raises(SettingsError, match="placeholder"):
        load_settings(AuthSettings)
    env.setenv("TRESOR_AUTH_ENVIRONMENT", "development")
    assert load_settings(AuthSettings).tokens() == ["change-me-change-me-change-me"]


def test_secrets_may_come_from_files(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("token-from-a-mounted-secret\n")
    env.delenv("TRESOR_AUTH_SERVICE_TOKENS")
    env.setenv("TRESOR_AUTH_SERVICE_TOKENS_FILE", str(token_file))
    assert load_settings(AuthSettings).tokens() == ["token-from-a-mounted-secret"]


def test_unreadable_secret_file_is_named(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("TRESOR_AUTH_SERVICE_TOKENS")
    env.setenv("TRESOR_AUTH_SERVICE_TOKENS_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="TRESOR_AUTH_SERVICE_TOKENS_FILE"):
        load_settings(AuthSettings)


def test_limits_are_consistent(env: pytest.MonkeyPatch) -> None:
    env.setenv("TRESOR_AUTH_IDLE_TIMEOUT_SECONDS", "7200")
    with pytest.raises(SettingsError, match="max_idle_timeout_seconds"):
        load_settings(AuthSettings)
