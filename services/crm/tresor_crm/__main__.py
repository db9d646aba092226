"""`python -m tresor_crm`: migrate the database, then serve the web UI and the API."""

import argparse
import logging

from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings
from tresor_crm.config import CrmSettings
from tresor_crm.server import http_server, migrate

log = logging.getLogger("tresor_crm")


def main() -> None:
    parser = argparse.ArgumentParser(prog="tresor-crm", description="Tresor CRM service")
    parser.add_argument("--migrate-only", action="store_true", help="apply migrations and exit")
    args = parser.parse_args()
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
    http_server(settings).run()


if __name__ == "__main__":
    main()
