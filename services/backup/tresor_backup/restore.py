"""Restoring a snapshot into empty databases, then erasing again what was erased since.

Before anything is written: the manifest must open with the operator's key and be
unaltered, and every part must be present with its recorded size and SHA-256; every
problem is reported by part name and nothing is restored. Each database is restored by
one `pg_restore --single-transaction`, fed by the decrypting, decompressing stream.

Erasures: the CRM keeps a record of every erased contact. The records in the target
`crm` database are read BEFORE the restore; after it, they are written back and each
named contact is erased again, so a person erased after the snapshot never returns.
"""

import contextlib
import hashlib
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import zstandard

from tresor_backup import crypto, pg_store
from tresor_backup.snapshot import READ_BLOCK, ManifestError, decode_manifest
from tresor_backup.store import MANIFEST, SnapshotStore, StoreError

Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    pass


class RestoreError(Exception):
    """The snapshot cannot be restored; the message names every problem."""


@dataclass(frozen=True)
class CheckedSnapshot:
    snapshot_id: str
    manifest: dict[str, Any]
    data_key: bytes


@dataclass(frozen=True)
class RestoreResult:
    snapshot_id: str
    databases: list[str]
    erasures_reapplied: int


def check_snapshot(
    store: SnapshotStore, snapshot_id: str, operator_key: bytes, progress: Progress = no_progress
) -> CheckedSnapshot:
    """Manifest, key and every part's size and SHA-256; RestoreError naming all problems."""
    try:
        manifest = decode_manifest(store.read(snapshot_id, MANIFEST), operator_key, snapshot_id)
        data_key = crypto.unwrap_key(operator_key, manifest["wrapped_key"], snapshot_id)
    except (StoreError, ManifestError, crypto.CryptoError, ValueError) as exc:
        raise RestoreError(f"snapshot {snapshot_id}: {exc}") from None
    problems = []
    for part in manifest["parts"]:
        digest = hashlib.sha256()
        size = 0
        try:
            with store.open(snapshot_id, part["name"]) as source:
                while block := source.read(READ_BLOCK):
                    digest.update(block)
                    size += len(block)
        except StoreError:
            problems.append(f"{part['name']}: missing")
            continue
        if size != part["size"]:
            problems.append(f"{part['name']}: damaged (size {size}, expected {part['size']})")
        elif digest.hexdigest() != part["sha256"]:
            problems.append(f"{part['name']}: damaged (SHA-256 does not match the manifest)")
        else:
            progress(f"{part['name']}: checksum ok")
    if problems:
        raise RestoreError(f"snapshot {snapshot_id}: " + "; ".join(problems))
    return CheckedSnapshot(snapshot_id, manifest, data_key)


def _restore_part(
    *,
    store: SnapshotStore,
    checked: CheckedSnapshot,
    part: dict[str, Any],
    url: str,
    clean: bool,
    pg_bin_dir: Path | None,
) -> None:
    with psycopg.connect(url) as conn:
        tools = pg_store.find_tools(pg_store.server_major(conn), pg_bin_dir)
    command = [
        str(tools.pg_restore),
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={url}",
    ]
    if clean:
        command += ["--clean", "--if-exists"]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors)  # noqa: S603
        assert process.stdin is not None
        failure: Exception | None = None
        try:
            with store.open(checked.snapshot_id, part["name"]) as source:
                decompressor = zstandard.ZstdDecompressor().decompressobj()
                for chunk in crypto.decrypt_chunks(source, checked.data_key, part["name"]):
                    process.stdin.write(decompressor.decompress(chunk))
        except (crypto.CryptoError, zstandard.ZstdError, StoreError) as exc:
            # Killing pg_restore rolls its single transaction back: nothing is restored.
            process.kill()
            failure = exc
        except BrokenPipeError:
            pass
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        code = process.wait()
        if failure is not None:
            raise RestoreError(f"{part['name']}: {failure}")
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RestoreError(f"pg_restore of {part['database']} failed: {message}")


def restore_snapshot(
    *,
    store: SnapshotStore,
    snapshot_id: str,
    operator_key: bytes,
    targets: dict[str, str],
    force: bool = False,
    reapply_erasures: bool = True,
    pg_bin_dir: Path | None = None,
    progress: Progress = no_progress,
) -> RestoreResult:
    checked = check_snapshot(store, snapshot_id, operator_key, progress)
    parts = {part["database"]: part for part in checked.manifest["parts"]}
    missing = sorted(set(parts) - set(targets))
    if missing:
        raise RestoreError(f"no target database for: {', '.join(missing)}")
    non_empty = []
    for name in parts:
        with psycopg.connect(targets[name]) as conn:
            if not pg_store.is_empty(conn):
                non_empty.append(f"{name} ({pg_store.database_name(targets[name])})")
    if non_empty and not force:
        raise RestoreError(
            f"not empty: {', '.join(non_empty)}; restore into empty databases, "
            "or pass --force to overwrite"
        )
    erasures: list[dict[str, Any]] = []
    if reapply_erasures and "crm" in parts:
        erasures = pg_store.read_erasures(targets["crm"])
        progress(f"crm: {len(erasures)} erasure records read before the restore")
    for name, part in parts.items():
        progress(f"{name}: restoring")
        _restore_part(
            store=store,
            checked=checked,
            part=part,
            url=targets[name],
            clean=force and bool(non_empty),
            pg_bin_dir=pg_bin_dir,
        )
        progress(f"{name}: restored")
    erased = 0
    if erasures:
        erased = pg_store.reapply_erasures(targets["crm"], erasures)
        progress(f"crm: {erased} erased contacts erased again")
    return RestoreResult(snapshot_id, sorted(parts), erased)
