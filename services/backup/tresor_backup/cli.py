"""The backup commands: what `python -m tresor_backup <command>` runs.

Progress goes to stderr as plain lines; outcomes are logged as JSON on stdout.
Exit status: 0 done, 1 the work failed (the message says why).
"""

import json
import logging
import sys
from typing import Any

from tresor_backup import crypto, pg_store
from tresor_backup.config import BackupSettings
from tresor_backup.restore import RestoreError, restore_snapshot
from tresor_backup.retention import prune
from tresor_backup.snapshot import ManifestError, take_snapshot
from tresor_backup.store import MANIFEST, VERIFIED, StoreError, store_from_settings
from tresor_backup.verify import verify_snapshot

log = logging.getLogger("tresor_backup")

# What a command may fail with; anything else is a bug and keeps its traceback.
FAILURES: tuple[type[Exception], ...] = (
    RestoreError,
    StoreError,
    ManifestError,
    crypto.CryptoError,
    pg_store.PgToolError,
)


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
        progress=progress,
    )
    log.info(
        "snapshot restored",
        extra={"snapshot_id": snapshot_id, "erasures_reapplied": result.erasures_reapplied},
    )


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


def run_daily(settings: BackupSettings) -> bool:
    """The nightly job: snapshot, verify it, prune. The outcome is logged either way."""
    snapshot_id = ""
    try:
        snapshot_id = snapshot(settings)
        ok = verify(settings, snapshot_id)
        deleted = prune_snapshots(settings, dry_run=False)
    except FAILURES as exc:
        log.error("daily backup failed", extra={"snapshot_id": snapshot_id, "error": str(exc)})
        return False
    log.info(
        "daily backup done",
        extra={"snapshot_id": snapshot_id, "verified": ok, "pruned": len(deleted)},
    )
    return ok
