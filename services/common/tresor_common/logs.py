"""One JSON log setup for every service, with secrets redacted at the logging layer.

Link tokens appear in URL paths (`/s/<token>/...`); cookie secrets, passwords
and bearer tokens may appear in messages or extra fields by mistake. Every
record passes through `redact` before it is written.
"""

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"

_PATTERNS = [
    # /s/<link-token>/... in any path or URL
    (re.compile(r"(/s/)[A-Za-z0-9_\-]{8,}"), r"\1" + REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(__Host-[a-z_]+=)[^;\s]+"), r"\1" + REDACTED),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|cookie|authorization)[\"']?\s*[:=]\s*)"
            r"(\"[^\"]*\"|'[^']*'|[^\s,;}&]+)"
        ),
        r"\1" + REDACTED,
    ),
]

_SECRET_KEYS = re.compile(r"(?i)password|secret|token|cookie|authorization|api[_-]?key")

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()) | {
    "message",
    "asctime",
    "taskName",
}


def redact(value: Any, key: str = "") -> Any:
    """Remove anything that looks like a secret from a log value."""
    if key and _SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, str):
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = redact(value, key)
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Called once, from a service's main; JSON lines on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
