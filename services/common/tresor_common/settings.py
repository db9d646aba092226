"""Settings from the environment, read once at start-up.

Every setting is `TRESOR_<SERVICE>_<NAME>`; a secret may instead be given as a
file named by `TRESOR_<SERVICE>_<NAME>_FILE` (a Kubernetes Secret volume).
A bad setting stops the service with a message that names it.
"""

import os
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings

SettingsT = TypeVar("SettingsT", bound="TresorSettings")


class SettingsError(Exception):
    """A setting is missing or invalid; the message names it."""


class TresorSettings(BaseSettings):
    """Base for every service's settings: adds `<NAME>_FILE` for secrets."""

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field in cls.model_fields:
            file_var = f"{prefix}{field}_FILE".upper()
            path = os.environ.get(file_var)
            if path and field not in data:
                try:
                    data[field] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{file_var}: cannot read {path}: {exc.strerror}") from exc
        return data


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings, turning validation errors into one readable message."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            lines.append(f"{prefix}{name}".upper() + f": {error['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None


def exit_on_settings_error(exc: SettingsError) -> None:
    print(str(exc), file=sys.stderr)
    raise SystemExit(2)
