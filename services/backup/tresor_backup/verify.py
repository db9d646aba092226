"""Verify a snapshot: restore it into scratch databases and compare with its manifest.

The outcome is recorded next to the manifest as `verified.json` (written atomically).
"""

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from tresor_backup import pg_store
from tresor_backup.restore import Progress, RestoreError, no_progress, restore_snapshot
from tresor_backup.store import VERIFIED, SnapshotStore


@dataclass(frozen=True)
class VerifyResult:
    snapshot_id: str
    ok: bool
    problems: list[str]


def verify_snapshot(
    *,
    store: SnapshotStore,
    snapshot_id: str,
    operator_key: bytes,
    servers: dict[str, str],
    pg_bin_dir: Path | None = None,
    progress: Progress = no_progress,
) -> VerifyResult:
    """`servers`: per database, a URL of the server to create the scratch database on."""
    problems: list[str] = []
    scratch = {name: f"tresor_verify_{name}_{secrets.token_hex(4)}" for name in servers}
    targets = {name: pg_store.create_database(url, scratch[name]) for name, url in servers.items()}
    try:
        result = restore_snapshot(
            store=store,
            snapshot_id=snapshot_id,
            operator_key=operator_key,
            targets=targets,
            reapply_erasures=False,
            pg_bin_dir=pg_bin_dir,
            progress=progress,
        )
        manifest = json.loads(store.read(snapshot_id, "manifest.json"))
        for name in result.databases:
            with psycopg.connect(targets[name]) as conn:
                actual = pg_store.table_checksums(conn)
            expected: dict[str, Any] = manifest["databases"][name]["tables"]
            for table in sorted(set(actual) | set(expected)):
                if actual.get(table) != expected.get(table):
                    problems.append(
                        f"{name}.{table}: expected {expected.get(table)}, found {actual.get(table)}"
                    )
    except RestoreError as exc:
        problems.append(str(exc))
    finally:
        for name, url in servers.items():
            pg_store.drop_database(url, scratch[name])
    record = {
        "snapshot_id": snapshot_id,
        "verified_at": datetime.now(UTC).isoformat(),
        "ok": not problems,
        "problems": problems,
    }
    store.write(snapshot_id, VERIFIED, json.dumps(record, indent=2).encode() + b"\n")
    return VerifyResult(snapshot_id, not problems, problems)
