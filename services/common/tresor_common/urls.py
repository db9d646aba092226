"""Validation of connection URLs in settings, with messages that say what is wrong."""

from urllib.parse import urlsplit

import psycopg.conninfo


def check_postgres_url(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("expected a postgresql:// URL")
    try:
        psycopg.conninfo.conninfo_to_dict(value)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a valid PostgreSQL URL: {exc}") from None
    return value


def check_redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("the Redis URL has no host")
    return value
