"""Restoring a snapshot into empty databases, then erasing again what was erased since.

Before anything is written: the manifest must open with the operator's key and be
unaltered, and every part must be present with its recorded size and SHA-256; every
problem is reported by part name and nothing is restored. Each database is restored by
one `pg_restore --single-transaction`, fed by the decrypting, decompressing stream.

Erasures: the CRM keeps a record of every erased contact. The records in the target
`crm` database are read BEFORE the restore and written to a pending file
(`erasures-pending-<database>.json`, mode 0600) in the work directory before anything is
restored; after the restore they are written back and each named contact is erased
again, so a person erased after the snapshot never returns. The file is deleted only
once the erasures are applied: if the process dies in between, the next `restore` into
the same database picks the leftover file up (or `reapply-erasures --from FILE` applies
it by hand).
"""

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import zstandard

from tresor_backup import crypto, pg_store
from tresor_backup.snapshot import READ_BLOCK, ManifestError, decode_manifest
from tresor_backup.store import MANIFEST, SnapshotStore, StoreError, _fsync_dir

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


# -- erasures waiting to be applied again -------------------------------------------------

_UUID_FIELDS = ("id", "tenant_id", "record_id", "erased_by")


def pending_erasures_path(work_dir: Path, crm_url: str) -> Path:
    """The pending file for a restore into this `crm` database."""
    return work_dir / f"erasures-pending-{pg_store.database_name(crm_url)}.json"


def write_pending_erasures(path: Path, records: list[dict[str, Any]]) -> None:
    """Write the records (JSON, 0600) under a temporary name, fsync, rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"erasures": records}, default=str, sort_keys=True).encode()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def read_pending_erasures(path: Path) -> list[dict[str, Any]]:
    """The records of a pending file; RestoreError if it cannot be read."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))["erasures"]
        records = []
        for item in raw:
            record = dict(item)
            for name in _UUID_FIELDS:
                if record.get(name) is not None:
                    record[name] = uuid.UUID(str(record[name]))
            record["erased_at"] = datetime.fromisoformat(str(record["erased_at"]))
            records.append(record)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RestoreError(f"pending erasures {path}: unreadable ({exc})") from None
    return records


def _merge(*batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for record in batch:
            by_id.setdefault(str(record["id"]), record)
    return sorted(by_id.values(), key=lambda r: r["erased_at"])


def reapply_pending_erasures(path: Path, crm_url: str, progress: Progress = no_progress) -> int:
    """Apply the erasures of a pending file to `crm_url`, then delete the file."""
    records = read_pending_erasures(path)
    erased = pg_store.reapply_erasures(crm_url, records) if records else 0
    path.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    progress(f"crm: {erased} erased contacts erased again (from {path.name})")
    return erased


def restore_snapshot(
    *,
    store: SnapshotStore,
    snapshot_id: str,
    operator_key: bytes,
    targets: dict[str, str],
    force: bool = False,
    reapply_erasures: bool = True,
    pg_bin_dir: Path | None = None,
    work_dir: Path | None = None,
    progress: Progress = no_progress,
) -> RestoreResult:
    """Restore `snapshot_id` into `targets`; `work_dir` holds the pending erasures file."""
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
    pending: Path | None = None
    if reapply_erasures and "crm" in parts:
        pending = pending_erasures_path(work_dir or Path(tempfile.gettempdir()), targets["crm"])
        leftover: list[dict[str, Any]] = []
        if pending.is_file():
            leftover = read_pending_erasures(pending)
            progress(f"crm: {len(leftover)} erasure records left by an interrupted restore")
        current = pg_store.read_erasures(targets["crm"])
        progress(f"crm: {len(current)} erasure records read before the restore")
        # On disk before anything is restored: a crash after pg_restore loses nothing.
        write_pending_erasures(pending, _merge(leftover, current))
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
    if pending is not None:
        erased = reapply_pending_erasures(pending, targets["crm"], progress)
    return RestoreResult(snapshot_id, sorted(parts), erased)
