"""`python -m tresor_auth`: migrate the database, then serve until SIGTERM."""

import argparse
import asyncio
import logging
import signal

from tresor_auth.config import AuthSettings
from tresor_auth.server import create_server, migrate
from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings

log = logging.getLogger("tresor_auth")


async def serve(settings: AuthSettings) -> None:
    running = await create_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop(grace=5.0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="tresor-auth", description="Tresor auth service (gRPC)")
    parser.add_argument("--migrate-only", action="store_true", help="apply migrations and exit")
    args = parser.parse_args()
    try:
        settings = load_settings(AuthSettings)
    except SettingsError as exc:
        exit_on_settings_error(exc)
        return
    configure_logging("auth", settings.log_level)
    if settings.migrate_on_start or args.migrate_only:
        applied = migrate(settings)
        log.info("database migrated", extra={"applied": applied})
    if args.migrate_only:
        return
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
