"""The S3 store against a real S3-compatible server (moto in server mode), not a mock."""

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_s3 import S3Client

from tests.backing import free_port
from tests.backup.crm_data import add_company_with_contacts
from tresor_backup import pg_store
from tresor_backup.restore import RestoreError, restore_snapshot
from tresor_backup.snapshot import part_name, take_snapshot
from tresor_backup.store import MANIFEST, S3Store


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="eu-central-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def s3_store(s3_client: S3Client, tmp_path: Path) -> S3Store:
    bucket = f"tresor-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    return S3Store(s3_client, bucket, "snapshots/", tmp_path / "work")


def test_parts_without_a_manifest_are_never_listed_and_are_cleaned_up(
    s3_store: S3Store,
) -> None:
    staging = s3_store.staging("20250101T020000Z-dead")
    (staging / "auth.dump.zst.enc").write_bytes(b"part")
    # A crash after the parts were uploaded, before the manifest.
    s3_store.client.upload_file(
        str(staging / "auth.dump.zst.enc"),
        s3_store.bucket,
        "snapshots/20250101T020000Z-dead/auth.dump.zst.enc",
    )
    assert s3_store.list_ids() == []

    removed = s3_store.cleanup()

    assert "20250101T020000Z-dead" in removed
    assert "Contents" not in s3_store.client.list_objects_v2(Bucket=s3_store.bucket)


def test_snapshot_and_restore_through_s3(
    s3_store: S3Store,
    sources: dict[str, str],
    operator_key: bytes,
    empty_database: Callable[[], str],
) -> None:
    add_company_with_contacts(sources["crm"], uuid.uuid4(), 4)
    result = take_snapshot(databases=sources, store=s3_store, operator_key=operator_key)
    assert s3_store.list_ids() == [result.snapshot_id]
    assert b'"wrapped_key"' in s3_store.read(result.snapshot_id, MANIFEST)
    targets = {"auth": empty_database(), "crm": empty_database()}

    restore_snapshot(
        store=s3_store, snapshot_id=result.snapshot_id, operator_key=operator_key, targets=targets
    )

    for name in ("auth", "crm"):
        with psycopg.connect(targets[name]) as conn:
            assert pg_store.table_checksums(conn) == result.manifest["databases"][name]["tables"]

    s3_store.client.delete_object(
        Bucket=s3_store.bucket, Key=f"snapshots/{result.snapshot_id}/{part_name('auth')}"
    )
    with pytest.raises(RestoreError, match=f"{part_name('auth')}: missing"):
        restore_snapshot(
            store=s3_store,
            snapshot_id=result.snapshot_id,
            operator_key=operator_key,
            targets={"auth": empty_database(), "crm": empty_database()},
        )
    s3_store.delete(result.snapshot_id)
    assert s3_store.list_ids() == []
