"""Migrations and the HTTP server for the CRM, from settings."""

from pathlib import Path

import uvicorn

from tresor_common.migrations import apply_migrations
from tresor_crm.app import create_app
from tresor_crm.config import CrmSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: CrmSettings) -> list[str]:
    return apply_migrations(settings.migration_url, MIGRATIONS)


def http_server(settings: CrmSettings) -> uvicorn.Server:
    host, _, port = settings.listen.rpartition(":")
    config = uvicorn.Config(
        create_app(settings),
        host=host.strip("[]") or "127.0.0.1",
        port=int(port),
        proxy_headers=False,
        server_header=False,
        date_header=False,
        # Paths carry link tokens.
        access_log=False,
        log_config=None,
        lifespan="on",
    )
    return uvicorn.Server(config)
