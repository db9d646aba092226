"""`python -m tresor_backup snapshot|list|restore|verify|prune|run-daily|runs|export|serve`."""

import argparse
import asyncio
import signal
import sys

from tresor_backup import cli
from tresor_backup.config import BackupSettings
from tresor_backup.daily import DailySettings
from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tresor-backup", description="Tresor backups")
    commands = parser.add_subparsers(dest="command", required=True)
    cli.add_commands(commands)
    commands.add_parser("serve", help="serve the gRPC API (and the daily run) until SIGTERM")
    return parser


async def _serve(settings: BackupSettings, daily: DailySettings) -> None:
    from tresor_backup.server import create_server

    running = await create_server(settings, daily=daily)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop(grace=5.0)


def main() -> None:
    args = _parser().parse_args()
    if args.command != "serve":
        sys.exit(cli.run(args))
    try:
        settings = load_settings(BackupSettings)
        daily = load_settings(DailySettings)
    except SettingsError as exc:
        exit_on_settings_error(exc)
        return
    configure_logging("backup", settings.log_level)
    asyncio.run(_serve(settings, daily))


if __name__ == "__main__":
    main()
