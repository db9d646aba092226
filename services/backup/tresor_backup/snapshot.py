"""Taking a snapshot: both databases at one point in time each, compressed, encrypted.

For each database a REPEATABLE READ transaction exports its snapshot; the table
checksums are computed inside it and `pg_dump --snapshot` dumps the same point in
time. pg_dump writes custom format uncompressed (-Z0) into a pipe; zstd compresses
the stream and it is sealed chunk by chunk (see crypto.py), so memory stays flat.

Test hook: TRESOR_BACKUP_TEST_CRASH_AT=<point> makes the process SIGKILL itself at
that point (`after-first-part`, `during-manifest`, `before-publish`), so tests can prove
that a crash never leaves a snapshot that looks whole. Never set it in production.
"""

import json
import os
import secrets
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import zstandard

from tresor_backup import crypto, pg_store
from tresor_backup.store import MANIFEST, SnapshotStore

FORMAT = 1
READ_BLOCK = 1 << 20
REPORT_EVERY = 64 << 20
CRASH_ENV = "TRESOR_BACKUP_TEST_CRASH_AT"

Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    pass


def crash_point(name: str) -> None:
    """The test hook: die here, without cleanup, when asked to."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def tresor_version() -> str:
    try:
        return metadata.version("tresor")
    except metadata.PackageNotFoundError:
        return "unknown"


def new_snapshot_id(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def snapshot_time(snapshot_id: str) -> datetime:
    return datetime.strptime(snapshot_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def part_name(database: str) -> str:
    return f"{database}.dump.zst.enc"


@dataclass(frozen=True)
class SnapshotResult:
    snapshot_id: str
    manifest: dict[str, Any]


def encode_manifest(body: dict[str, Any], operator_key: bytes) -> bytes:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    signed = {**body, "mac": crypto.manifest_mac(operator_key, canonical)}
    return json.dumps(signed, indent=2, sort_keys=True).encode() + b"\n"


class ManifestError(Exception):
    """A manifest is unreadable or has been altered."""


def decode_manifest(data: bytes, operator_key: bytes, snapshot_id: str) -> dict[str, Any]:
    try:
        signed = json.loads(data)
        mac = signed.pop("mac")
    except (ValueError, KeyError, AttributeError):
        raise ManifestError(f"{snapshot_id}/{MANIFEST}: unreadable") from None
    key_id = crypto.key_id(operator_key)
    if signed.get("key_id") != key_id:
        raise crypto.CryptoError(
            f"wrong key: snapshot {snapshot_id} needs key id {signed.get('key_id')}, "
            f"the given key has id {key_id}"
        )
    canonical = json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    if not secrets.compare_digest(crypto.manifest_mac(operator_key, canonical), str(mac)):
        raise ManifestError(f"{snapshot_id}/{MANIFEST}: damaged or altered")
    return dict(signed)


def _dump_database(
    *,
    name: str,
    url: str,
    out_path: Path,
    data_key: bytes,
    pg_bin_dir: Path | None,
    progress: Progress,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(part entry, database entry) of one database's dump."""
    with psycopg.connect(url) as conn:
        tools = pg_store.find_tools(pg_store.server_major(conn), pg_bin_dir)
        version = pg_store.server_version(conn)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        exported = str(row[0])
        tables = pg_store.table_checksums(conn)
        progress(f"{name}: {len(tables)} tables counted, dumping")
        with out_path.open("wb") as out, tempfile.TemporaryFile() as stderr:
            sealer = crypto.EncryptingWriter(out, data_key, part_name(name))
            # Any object with write() will do; the stubs ask for IO[bytes].
            compressor = zstandard.ZstdCompressor(level=3).stream_writer(
                sealer,  # type: ignore[arg-type]
                closefd=False,
            )
            process = subprocess.Popen(  # noqa: S603 - our own tool path and arguments
                [
                    str(tools.pg_dump),
                    "--format=custom",
                    "--compress=0",
                    f"--snapshot={exported}",
                    "--no-password",
                    f"--dbname={url}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert process.stdout is not None
            assert process.stderr is not None
            dumped = 0
            report_at = REPORT_EVERY
            while block := process.stdout.read(READ_BLOCK):
                compressor.write(block)
                dumped += len(block)
                if dumped >= report_at:
                    progress(f"{name}: {dumped >> 20} MiB dumped")
                    report_at += REPORT_EVERY
            if process.wait() != 0:
                stderr.seek(0)
                errors = stderr.read().decode(errors="replace").strip()
                raise pg_store.PgToolError(f"pg_dump of {name} failed: {errors}")
            compressor.flush(zstandard.FLUSH_FRAME)
            compressor.close()  # type: ignore[no-untyped-call]
            sealer.close()
            out.flush()
            os.fsync(out.fileno())
        conn.rollback()
    progress(f"{name}: {dumped} bytes dumped, {sealer.size} bytes stored")
    part = {
        "name": part_name(name),
        "database": name,
        "size": sealer.size,
        "sha256": sealer.sha256.hexdigest(),
    }
    database = {
        "postgresql_version": version,
        "pg_dump_major": tools.major,
        "tables": tables,
    }
    return part, database


def take_snapshot(
    *,
    databases: dict[str, str],
    store: SnapshotStore,
    operator_key: bytes,
    pg_bin_dir: Path | None = None,
    now: datetime | None = None,
    progress: Progress = _no_progress,
) -> SnapshotResult:
    removed = store.cleanup()
    if removed:
        progress(f"removed leftovers of earlier runs: {', '.join(removed)}")
    created = now or datetime.now(UTC)
    snapshot_id = new_snapshot_id(created)
    staging = store.staging(snapshot_id)
    data_key = crypto.new_data_key()
    parts: list[dict[str, Any]] = []
    entries: dict[str, Any] = {}
    for name, url in databases.items():
        part, entry = _dump_database(
            name=name,
            url=url,
            out_path=staging / part_name(name),
            data_key=data_key,
            pg_bin_dir=pg_bin_dir,
            progress=progress,
        )
        parts.append(part)
        entries[name] = entry
        crash_point("after-first-part")
    body = {
        "format": FORMAT,
        "id": snapshot_id,
        "created_at": created.astimezone(UTC).isoformat(),
        "tresor_version": tresor_version(),
        "key_id": crypto.key_id(operator_key),
        "wrapped_key": crypto.wrap_key(operator_key, data_key, snapshot_id),
        "parts": parts,
        "databases": entries,
    }
    encoded = encode_manifest(body, operator_key)
    with (staging / MANIFEST).open("wb") as out:
        out.write(encoded[: len(encoded) // 2])
        out.flush()
        crash_point("during-manifest")
        out.write(encoded[len(encoded) // 2 :])
    crash_point("before-publish")
    store.publish(snapshot_id, staging)
    progress(f"snapshot {snapshot_id} complete")
    return SnapshotResult(snapshot_id, body)
