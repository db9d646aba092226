"""The backup commands, for `python -m tresor_backup <command>` and `tresorctl backup ...`.

Progress goes to stderr as plain lines; outcomes are logged as JSON on stdout.
Exit status: 0 done, 1 the work failed (the message says why), 2 bad usage or settings.
`export` is the one command that talks to the running backup service (over gRPC, with
the first of TRESOR_BACKUP_SERVICE_TOKENS); the others work on the store directly.
"""

import argparse
import asyncio
import json
import logging
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grpc import aio

from tresor.backup.v1 import backup_pb2 as pb
from tresor.backup.v1 import backup_pb2_grpc
from tresor_backup import daily
from tresor_backup.config import BackupSettings
from tresor_backup.daily import FAILURES, DailySettings, RunLog
from tresor_backup.metrics import RunMetrics
from tresor_backup.restore import reapply_pending_erasures, restore_snapshot
from tresor_backup.retention import prune
from tresor_backup.snapshot import take_snapshot
from tresor_backup.store import MANIFEST, VERIFIED, StoreError, store_from_settings
from tresor_backup.verify import verify_snapshot
from tresor_common.grpc_tokens import bearer_metadata
from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings

log = logging.getLogger("tresor_backup")

EXPORT_POLL_SECONDS = 0.5
EXPORT_DONE = (pb.EXPORT_STATE_DONE, pb.EXPORT_STATE_FAILED)


class ExportFailed(Exception):
    """The export could not be made or fetched; the message says why."""


COMMAND_FAILURES: tuple[type[Exception], ...] = (*FAILURES, ExportFailed)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def snapshot(settings: BackupSettings) -> str:
    result = take_snapshot(
        databases=settings.database_urls(),
        store=store_from_settings(settings),
        operator_key=settings.operator_key(),
        pg_bin_dir=settings.pg_bin_dir,
        progress=progress,
    )
    log.info("snapshot taken", extra={"snapshot_id": result.snapshot_id})
    return result.snapshot_id


def list_snapshots(settings: BackupSettings) -> list[dict[str, Any]]:
    store = store_from_settings(settings)
    rows = []
    for snapshot_id in store.list_ids():
        manifest = json.loads(store.read(snapshot_id, MANIFEST))
        try:
            verified = json.loads(store.read(snapshot_id, VERIFIED))
        except StoreError:
            verified = None
        rows.append(
            {
                "id": snapshot_id,
                "created_at": manifest["created_at"],
                "size": sum(part["size"] for part in manifest["parts"]),
                "verified": None if verified is None else verified["ok"],
            }
        )
    return rows


def restore(
    settings: BackupSettings, snapshot_id: str, *, targets: dict[str, str], force: bool
) -> None:
    result = restore_snapshot(
        store=store_from_settings(settings),
        snapshot_id=snapshot_id,
        operator_key=settings.operator_key(),
        targets={**settings.database_urls(), **targets},
        force=force,
        pg_bin_dir=settings.pg_bin_dir,
        work_dir=restore_work_dir(settings),
        progress=progress,
    )
    log.info(
        "snapshot restored",
        extra={"snapshot_id": snapshot_id, "erasures_reapplied": result.erasures_reapplied},
    )


def restore_work_dir(settings: BackupSettings) -> Path:
    """Where `restore` keeps its pending erasures file: WORK_DIR, else the DIRECTORY."""
    return settings.work_dir or settings.directory


def reapply_erasures(settings: BackupSettings, source: Path, crm_url: str | None) -> int:
    """Apply a pending erasures file left by an interrupted restore, then delete it."""
    erased = reapply_pending_erasures(source, crm_url or settings.crm_database_url, progress)
    log.info("erasures applied again", extra={"from": str(source), "erased": erased})
    return erased


def verify(settings: BackupSettings, snapshot_id: str) -> bool:
    result = verify_snapshot(
        store=store_from_settings(settings),
        snapshot_id=snapshot_id,
        operator_key=settings.operator_key(),
        servers=settings.database_urls(),
        pg_bin_dir=settings.pg_bin_dir,
        progress=progress,
    )
    log.info(
        "snapshot verified" if result.ok else "snapshot failed verification",
        extra={"snapshot_id": snapshot_id, "ok": result.ok, "problems": result.problems},
    )
    for problem in result.problems:
        progress(f"verify: {problem}")
    return result.ok


def prune_snapshots(settings: BackupSettings, *, dry_run: bool) -> list[str]:
    result = prune(
        store_from_settings(settings),
        daily=settings.keep_daily,
        weekly=settings.keep_weekly,
        monthly=settings.keep_monthly,
        dry_run=dry_run,
    )
    log.info(
        "snapshots pruned",
        extra={"deleted": result.deleted, "kept": result.kept, "dry_run": dry_run},
    )
    return result.deleted


def run_daily(settings: BackupSettings, daily_settings: DailySettings) -> bool:
    """The nightly job: snapshot, verify it, prune. Recorded in the run log either way."""
    runs = RunLog(daily_settings.runs_path(settings), daily_settings.keep_runs)
    record = daily.run_daily(
        settings, store_from_settings(settings), runs, trigger="cli", progress=progress
    )
    if daily_settings.metrics_textfile is not None:
        metrics = RunMetrics()
        metrics.load(runs)
        metrics.write_textfile(daily_settings.metrics_textfile)
    if record.error:
        progress(f"daily backup failed: {record.error}")
    return record.ok


def runs(
    settings: BackupSettings, daily_settings: DailySettings, last: int
) -> list[dict[str, Any]]:
    """The last runs of the daily job, newest first."""
    records = RunLog(daily_settings.runs_path(settings), daily_settings.keep_runs).read()
    return [asdict(record) for record in reversed(records[-last:])]


# -- export: through the running backup service ---------------------------------------------


def _describe(export: pb.Export) -> str:
    p = export.progress
    return (
        f"export {export.export_id}: {p.phase or 'queued'}, {p.records} records,"
        f" {p.documents}/{p.documents_total} documents"
        f" ({p.document_bytes >> 20}/{p.document_bytes_total >> 20} MiB),"
        f" {p.users} users, {p.audit_events} audit events"
    )


async def export_tenant(
    *, address: str, token: str, tenant_id: str, out: Path | None, poll_seconds: float
) -> Path:
    """Ask for a tenant's export, wait for it with progress on stderr, write the ZIP."""
    auth = bearer_metadata(token)
    async with aio.insecure_channel(address) as channel:
        stub = backup_pb2_grpc.BackupServiceStub(channel)
        try:
            export: pb.Export = await stub.StartExport(
                pb.StartExportRequest(tenant_id=tenant_id), metadata=auth
            )
            progress(_describe(export))
            last = ""
            while export.state not in EXPORT_DONE:
                await asyncio.sleep(poll_seconds)
                export = await stub.ExportStatus(
                    pb.ExportStatusRequest(tenant_id=tenant_id, export_id=export.export_id),
                    metadata=auth,
                )
                if (line := _describe(export)) != last:
                    progress(line)
                    last = line
            if export.state == pb.EXPORT_STATE_FAILED:
                raise ExportFailed(f"export {export.export_id} failed: {export.error}")
            target = out or Path(f"tresor-export-{export.export_id}.zip")
            partial = target.with_name(f".{target.name}.part")
            with partial.open("wb") as file:
                async for chunk in stub.OpenExport(
                    pb.OpenExportRequest(tenant_id=tenant_id, export_id=export.export_id),
                    metadata=auth,
                ):
                    file.write(chunk.data)
            size = partial.stat().st_size
            if size != export.size_bytes:
                partial.unlink()
                raise ExportFailed(
                    f"export {export.export_id}: got {size} of {export.size_bytes} bytes"
                )
            partial.replace(target)
        except aio.AioRpcError as exc:
            raise ExportFailed(f"{exc.code().name}: {exc.details()}") from None
    progress(
        f"export {export.export_id}: {size} bytes written to {target} (sha256 {export.sha256})"
    )
    return target


def _tenant(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError("expected the tenant's id (a UUID)") from None


def _target(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or name not in ("auth", "crm") or not url:
        raise argparse.ArgumentTypeError("expected auth=URL or crm=URL")
    return name, url


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """The backup commands, the same under `python -m tresor_backup` and `tresorctl backup`."""
    commands.add_parser("snapshot", help="take a snapshot of both databases")
    commands.add_parser("list", help="list complete snapshots (JSON)")
    restore_ = commands.add_parser("restore", help="restore a snapshot into empty databases")
    restore_.add_argument("snapshot_id")
    restore_.add_argument(
        "--target",
        action="append",
        type=_target,
        default=[],
        metavar="DB=URL",
        help="restore database DB (auth, crm) into URL instead of the configured one",
    )
    restore_.add_argument("--force", action="store_true", help="overwrite non-empty databases")
    reapply_ = commands.add_parser(
        "reapply-erasures", help="apply the pending erasures file of an interrupted restore"
    )
    reapply_.add_argument("--from", dest="source", type=Path, required=True, metavar="FILE")
    reapply_.add_argument(
        "--crm-url", help="the crm database to apply them to (default TRESOR_BACKUP_CRM_...)"
    )
    verify_ = commands.add_parser("verify", help="restore into scratch databases and compare")
    verify_.add_argument("snapshot_id")
    prune_ = commands.add_parser("prune", help="delete snapshots outside the retention policy")
    prune_.add_argument("--dry-run", action="store_true")
    commands.add_parser("run-daily", help="snapshot, verify, prune (the nightly job)")
    runs_ = commands.add_parser("runs", help="the last daily runs and their outcome (JSON)")
    runs_.add_argument("--last", type=int, default=10, help="how many (default 10)")
    export_ = commands.add_parser(
        "export", help="export one tenant as a ZIP, through the running backup service"
    )
    export_.add_argument("tenant", type=_tenant, help="the tenant's id")
    export_.add_argument("--out", type=Path, help="the ZIP to write (default: its own name)")
    export_.add_argument(
        "--address", help="the backup service's gRPC address (default TRESOR_BACKUP_LISTEN)"
    )


def run(args: argparse.Namespace) -> int:
    """Load the settings, run one command; the exit status."""
    try:
        settings = load_settings(BackupSettings)
        daily_settings = load_settings(DailySettings)
    except SettingsError as exc:
        exit_on_settings_error(exc)
        return 2
    configure_logging("backup", settings.log_level)
    try:
        if args.command == "snapshot":
            print(snapshot(settings))
        elif args.command == "list":
            print(json.dumps(list_snapshots(settings), indent=2))
        elif args.command == "restore":
            restore(settings, args.snapshot_id, targets=dict(args.target), force=args.force)
        elif args.command == "reapply-erasures":
            reapply_erasures(settings, args.source, args.crm_url)
        elif args.command == "verify":
            return 0 if verify(settings, args.snapshot_id) else 1
        elif args.command == "prune":
            prune_snapshots(settings, dry_run=args.dry_run)
        elif args.command == "run-daily":
            return 0 if run_daily(settings, daily_settings) else 1
        elif args.command == "runs":
            print(json.dumps(runs(settings, daily_settings, args.last), indent=2))
        elif args.command == "export":
            tokens = settings.service_token_list()
            if not tokens:
                print("error: TRESOR_BACKUP_SERVICE_TOKENS: required for export", file=sys.stderr)
                return 2
            asyncio.run(
                export_tenant(
                    address=args.address or settings.listen,
                    token=tokens[0],
                    tenant_id=args.tenant,
                    out=args.out,
                    poll_seconds=EXPORT_POLL_SECONDS,
                )
            )
    except COMMAND_FAILURES as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def tresorctl_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tresorctl", description="Tresor for platform engineers")
    areas = parser.add_subparsers(dest="area", required=True, metavar="AREA")
    backup = areas.add_parser("backup", help="snapshots, restores, the daily run, exports")
    add_commands(backup.add_subparsers(dest="command", required=True))
    return parser


def tresorctl(argv: list[str] | None = None) -> None:
    """`tresorctl <area> <command> ...`: the console script."""
    args = tresorctl_parser().parse_args(argv)
    sys.exit(run(args))
