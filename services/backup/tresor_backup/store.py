"""Snapshot storage: a directory or an S3-compatible bucket, behind one small interface.

A snapshot is built in a local staging directory, then published whole:

- directory store: staging is `<dir>/.tmp-<id>/`, published by one atomic rename to
  `<dir>/<id>/`. A crash leaves only a `.tmp-` directory, which is never listed.
- S3 store: parts are uploaded first and `manifest.json` last; a snapshot is listed only
  when its manifest exists, so a crash leaves orphan parts, never a snapshot.

`cleanup()` removes what a crashed run left. Runs must not overlap (the CronJob
forbids concurrent runs): cleanup would take a running run's staging for leftovers.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from tresor_backup.config import BackupSettings

MANIFEST = "manifest.json"
VERIFIED = "verified.json"
STAGING_PREFIX = ".tmp-"


class StoreError(Exception):
    """A snapshot or one of its files is not in the store."""


class SnapshotStore(Protocol):
    def staging(self, snapshot_id: str) -> Path:
        """A new, empty local directory to write the snapshot's files into."""
        ...

    def publish(self, snapshot_id: str, staging: Path) -> None:
        """Make the staged snapshot visible, all at once."""
        ...

    def list_ids(self) -> list[str]:
        """Ids of the complete snapshots, oldest first."""
        ...

    def read(self, snapshot_id: str, name: str) -> bytes: ...

    def open(self, snapshot_id: str, name: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A file of a snapshot, for streaming."""
        ...

    def write(self, snapshot_id: str, name: str, data: bytes) -> None:
        """Add or replace a small file of a complete snapshot, atomically."""
        ...

    def delete(self, snapshot_id: str) -> None: ...

    def cleanup(self) -> list[str]:
        """Remove what crashed runs left; names of what was removed."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file under a temporary name, fsync it, rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _check_id(snapshot_id: str) -> None:
    if not snapshot_id or snapshot_id.startswith(".") or "/" in snapshot_id:
        raise StoreError(f"not a snapshot id: {snapshot_id!r}")


class DirectoryStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _snapshot_dir(self, snapshot_id: str) -> Path:
        _check_id(snapshot_id)
        return self.root / snapshot_id

    def staging(self, snapshot_id: str) -> Path:
        _check_id(snapshot_id)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{STAGING_PREFIX}{snapshot_id}"
        path.mkdir()
        return path

    def publish(self, snapshot_id: str, staging: Path) -> None:
        target = self._snapshot_dir(snapshot_id)
        for file in staging.iterdir():
            with file.open("rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(staging)
        staging.rename(target)
        _fsync_dir(self.root)

    def list_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith(".") and (entry / MANIFEST).is_file()
        )

    def _file(self, snapshot_id: str, name: str) -> Path:
        path = self._snapshot_dir(snapshot_id) / name
        if not path.is_file():
            raise StoreError(f"{snapshot_id}/{name}: missing")
        return path

    def read(self, snapshot_id: str, name: str) -> bytes:
        return self._file(snapshot_id, name).read_bytes()

    @contextlib.contextmanager
    def open(self, snapshot_id: str, name: str) -> Iterator[BinaryIO]:
        with self._file(snapshot_id, name).open("rb") as handle:
            yield handle

    def write(self, snapshot_id: str, name: str, data: bytes) -> None:
        write_atomically(self._file(snapshot_id, MANIFEST).parent / name, data)

    def delete(self, snapshot_id: str) -> None:
        path = self._snapshot_dir(snapshot_id)
        # Hide it first (one rename), then remove: a crash mid-way leaves no half snapshot.
        doomed = self.root / f"{STAGING_PREFIX}deleted-{snapshot_id}"
        path.rename(doomed)
        shutil.rmtree(doomed)

    def cleanup(self) -> list[str]:
        if not self.root.is_dir():
            return []
        removed = []
        for entry in self.root.iterdir():
            if entry.name.startswith(STAGING_PREFIX):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                removed.append(entry.name)
        return sorted(removed)


class S3Store:
    """Objects `<prefix><id>/<name>`; a snapshot exists when its manifest does."""

    def __init__(self, client: "S3Client", bucket: str, prefix: str, work_dir: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.work_dir = work_dir

    def _key(self, snapshot_id: str, name: str) -> str:
        _check_id(snapshot_id)
        return f"{self.prefix}{snapshot_id}/{name}"

    def staging(self, snapshot_id: str) -> Path:
        _check_id(snapshot_id)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"{STAGING_PREFIX}{snapshot_id}"
        path.mkdir()
        return path

    def publish(self, snapshot_id: str, staging: Path) -> None:
        files = sorted(p for p in staging.iterdir() if p.name != MANIFEST)
        for file in files:
            self.client.upload_file(str(file), self.bucket, self._key(snapshot_id, file.name))
        manifest = staging / MANIFEST
        if not manifest.is_file():
            raise StoreError(f"{snapshot_id}: staged without a manifest")
        self.client.upload_file(str(manifest), self.bucket, self._key(snapshot_id, MANIFEST))
        shutil.rmtree(staging)

    def _objects(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                yield dict(item)

    def _by_snapshot(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for item in self._objects():
            key = str(item["Key"])
            snapshot_id, _, name = key[len(self.prefix) :].partition("/")
            if name:
                grouped.setdefault(snapshot_id, []).append(name)
        return grouped

    def list_ids(self) -> list[str]:
        return sorted(sid for sid, names in self._by_snapshot().items() if MANIFEST in names)

    def read(self, snapshot_id: str, name: str) -> bytes:
        with self.open(snapshot_id, name) as body:
            return body.read()

    @contextlib.contextmanager
    def open(self, snapshot_id: str, name: str) -> Iterator[BinaryIO]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(snapshot_id, name))
        except self.client.exceptions.NoSuchKey:
            raise StoreError(f"{snapshot_id}/{name}: missing") from None
        body = response["Body"]
        try:
            yield body  # type: ignore[misc]
        finally:
            body.close()

    def write(self, snapshot_id: str, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(snapshot_id, name), Body=data)

    def _delete_keys(self, snapshot_id: str, names: list[str]) -> None:
        # The manifest goes first: from then on the snapshot is no longer listed.
        ordered = sorted(names, key=lambda name: name != MANIFEST)
        for name in ordered:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(snapshot_id, name))

    def delete(self, snapshot_id: str) -> None:
        names = self._by_snapshot().get(snapshot_id, [])
        if MANIFEST not in names:
            raise StoreError(f"{snapshot_id}: no such snapshot")
        self._delete_keys(snapshot_id, names)

    def cleanup(self) -> list[str]:
        removed = []
        for snapshot_id, names in self._by_snapshot().items():
            if MANIFEST not in names:
                self._delete_keys(snapshot_id, names)
                removed.append(snapshot_id)
        if self.work_dir.is_dir():
            for entry in self.work_dir.iterdir():
                if entry.name.startswith(STAGING_PREFIX):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
        return sorted(removed)


def store_from_settings(settings: "BackupSettings") -> SnapshotStore:
    if settings.store == "directory":
        return DirectoryStore(settings.directory)
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=(
            settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None
        ),
        aws_secret_access_key=(
            settings.s3_secret_access_key.get_secret_value()
            if settings.s3_secret_access_key
            else None
        ),
    )
    scratch = settings.work_dir or Path(tempfile.gettempdir()) / "tresor-backup"
    return S3Store(client, settings.s3_bucket, settings.s3_prefix, scratch)
