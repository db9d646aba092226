"""`python -m tresor_crm`: migrate the database, then serve the web UI, the API and gRPC.

`python -m tresor_crm openapi` prints the OpenAPI document and needs no settings.
"""

import argparse
import asyncio
import logging
import sys

from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings
from tresor_crm.config import CrmSettings
from tresor_crm.server import migrate, openapi_json, serve

log = logging.getLogger("tresor_crm")


def main() -> None:
    parser = argparse.ArgumentParser(prog="tresor-crm", description="Tresor CRM service")
    parser.add_argument(
        "command",
        nargs="?",
        choices=("serve", "openapi"),
        default="serve",
        help="serve (the default), or print the OpenAPI document",
    )
    parser.add_argument("--migrate-only", action="store_true", help="apply migrations and exit")
    args = parser.parse_args()
    if args.command == "openapi":
        sys.stdout.write(openapi_json())
        return
    try:
        settings = load_settings(CrmSettings)
    except SettingsError as exc:
        exit_on_settings_error(exc)
        return
    configure_logging("crm", settings.log_level)
    if settings.migrate_on_start or args.migrate_only:
        log.info("database migrated", extra={"applied": migrate(settings)})
    if args.migrate_only:
        return
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
