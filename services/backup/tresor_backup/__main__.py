"""`python -m tresor_backup snapshot|list|restore|verify|prune|run-daily|serve`."""

import argparse
import asyncio
import json
import signal
import sys

from tresor_backup import cli
from tresor_backup.config import BackupSettings
from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings


def _target(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or name not in ("auth", "crm") or not url:
        raise argparse.ArgumentTypeError("expected auth=URL or crm=URL")
    return name, url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tresor-backup", description="Tresor backups")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("snapshot", help="take a snapshot of both databases")
    commands.add_parser("list", help="list complete snapshots (JSON)")
    restore = commands.add_parser("restore", help="restore a snapshot into empty databases")
    restore.add_argument("snapshot_id")
    restore.add_argument(
        "--target",
        action="append",
        type=_target,
        default=[],
        metavar="DB=URL",
        help="restore database DB (auth, crm) into URL instead of the configured one",
    )
    restore.add_argument("--force", action="store_true", help="overwrite non-empty databases")
    verify = commands.add_parser("verify", help="restore into scratch databases and compare")
    verify.add_argument("snapshot_id")
    prune = commands.add_parser("prune", help="delete snapshots outside the retention policy")
    prune.add_argument("--dry-run", action="store_true")
    commands.add_parser("run-daily", help="snapshot, verify, prune (the nightly job)")
    commands.add_parser("serve", help="serve the gRPC API until SIGTERM")
    return parser


async def _serve(settings: BackupSettings) -> None:
    from tresor_backup.server import create_server

    running = await create_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop(grace=5.0)


def main() -> None:
    args = _parser().parse_args()
    try:
        settings = load_settings(BackupSettings)
    except SettingsError as exc:
        exit_on_settings_error(exc)
        return
    configure_logging("backup", settings.log_level)
    try:
        if args.command == "snapshot":
            print(cli.snapshot(settings))
        elif args.command == "list":
            print(json.dumps(cli.list_snapshots(settings), indent=2))
        elif args.command == "restore":
            cli.restore(settings, args.snapshot_id, targets=dict(args.target), force=args.force)
        elif args.command == "verify":
            if not cli.verify(settings, args.snapshot_id):
                sys.exit(1)
        elif args.command == "prune":
            cli.prune_snapshots(settings, dry_run=args.dry_run)
        elif args.command == "run-daily":
            if not cli.run_daily(settings):
                sys.exit(1)
        elif args.command == "serve":
            asyncio.run(_serve(settings))
    except cli.FAILURES as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
