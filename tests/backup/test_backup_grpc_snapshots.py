"""Snapshots over the backup gRPC API, on a real socket against real databases.

The export side of the server is configured but never called here (its channels and
connections open lazily), so these tests need only the auth and crm databases.
"""

import asyncio
import base64
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from pydantic import SecretStr

from tests.backup.crm_data import add_company_with_contacts
from tresor.backup.v1 import backup_pb2 as pb
from tresor.backup.v1 import backup_pb2_grpc
from tresor_backup.config import BackupSettings
from tresor_backup.server import BackupServer, create_server
from tresor_backup.store import DirectoryStore
from tresor_common.grpc_tokens import bearer_metadata


@dataclass
class Api:
    stub: Any
    server: BackupServer
    store: DirectoryStore
    auth: tuple[tuple[str, str]]


@contextlib.asynccontextmanager
async def _serving(
    sources: dict[str, str], operator_key: bytes, tmp_path: Path
) -> AsyncIterator[Api]:
    token = secrets.token_urlsafe(24)
    settings = BackupSettings(
        environment="development",
        auth_database_url=sources["auth"],
        crm_database_url=sources["crm"],
        key=SecretStr(base64.b64encode(operator_key).decode()),
        directory=tmp_path / "snapshots",
        service_tokens=SecretStr(token),
        export_directory=tmp_path / "exports",
        export_crm_database_url=sources["crm"],
        crm_service_token=SecretStr("unused"),
        auth_service_token=SecretStr("unused"),
    )
    server = await create_server(settings, "127.0.0.1:0")
    channel = aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Api(
            backup_pb2_grpc.BackupServiceStub(channel),
            server,
            DirectoryStore(tmp_path / "snapshots"),
            bearer_metadata(token),
        )
    finally:
        await channel.close(None)
        await server.stop(grace=0)


@pytest.fixture
async def api(sources: dict[str, str], operator_key: bytes, tmp_path: Path) -> AsyncIterator[Api]:
    async with _serving(sources, operator_key, tmp_path) as serving:
        yield serving


async def _listed(api: Api) -> list[pb.Snapshot]:
    reply = await api.stub.ListSnapshots(pb.ListSnapshotsRequest(), metadata=api.auth)
    return list(reply.snapshots)


async def _complete(api: Api, snapshot_id: str) -> pb.Snapshot:
    for _ in range(600):
        for snapshot in await _listed(api):
            if snapshot.id == snapshot_id and snapshot.state != pb.SNAPSHOT_STATE_RUNNING:
                return snapshot
        await asyncio.sleep(0.05)
    pytest.fail(f"snapshot {snapshot_id} did not finish")


async def test_start_poll_list_verify(api: Api, sources: dict[str, str]) -> None:
    add_company_with_contacts(sources["crm"], uuid.uuid4(), 3)
    started: pb.Snapshot = await api.stub.StartSnapshot(
        pb.StartSnapshotRequest(), metadata=api.auth
    )
    assert started.id
    assert started.started_at.seconds > 0

    done = await _complete(api, started.id)
    assert done.state == pb.SNAPSHOT_STATE_COMPLETE, done.error
    assert done.size_bytes > 0
    assert done.finished_at.seconds >= done.started_at.seconds
    assert not done.HasField("verified_at")
    assert api.store.list_ids() == [started.id]

    verified: pb.VerifySnapshotResponse = await api.stub.VerifySnapshot(
        pb.VerifySnapshotRequest(snapshot_id=started.id), metadata=api.auth, timeout=120
    )
    assert verified.ok, verified.problems
    assert verified.snapshot_id == started.id
    [listed] = await _listed(api)
    assert listed.HasField("verified_at")


async def test_a_damaged_snapshot_fails_verification_naming_the_part(api: Api) -> None:
    started = await api.stub.StartSnapshot(pb.StartSnapshotRequest(), metadata=api.auth)
    await _complete(api, started.id)
    part = api.store.root / started.id / "crm.dump.zst.enc"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))

    verified = await api.stub.VerifySnapshot(
        pb.VerifySnapshotRequest(snapshot_id=started.id), metadata=api.auth, timeout=120
    )
    assert not verified.ok
    assert any("crm.dump.zst.enc" in problem for problem in verified.problems)
    [listed] = await _listed(api)
    assert not listed.HasField("verified_at")


async def test_one_snapshot_at_a_time(api: Api) -> None:
    first = await api.stub.StartSnapshot(pb.StartSnapshotRequest(), metadata=api.auth)
    with pytest.raises(aio.AioRpcError) as refused:
        await api.stub.StartSnapshot(pb.StartSnapshotRequest(), metadata=api.auth)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert first.id in (refused.value.details() or "")
    await _complete(api, first.id)


async def test_a_failed_snapshot_is_listed_with_its_reason(
    sources: dict[str, str], operator_key: bytes, tmp_path: Path
) -> None:
    missing = {**sources, "crm": sources["crm"].rsplit("/", 1)[0] + "/tresor_missing"}
    async with _serving(missing, operator_key, tmp_path) as api:
        started = await api.stub.StartSnapshot(pb.StartSnapshotRequest(), metadata=api.auth)
        done = await _complete(api, started.id)
        assert done.state == pb.SNAPSHOT_STATE_FAILED
        assert "tresor_missing" in done.error
        assert done.finished_at.seconds > 0
        assert api.store.list_ids() == []
        assert [s.id for s in await _listed(api)] == [started.id]


async def test_unknown_or_missing_ids_and_tokens_are_refused(api: Api) -> None:
    for request, code in (
        (pb.VerifySnapshotRequest(snapshot_id="20260101T000000Z-abcd"), grpc.StatusCode.NOT_FOUND),
        (pb.VerifySnapshotRequest(snapshot_id="../etc"), grpc.StatusCode.NOT_FOUND),
        (pb.VerifySnapshotRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(aio.AioRpcError) as raised:
            await api.stub.VerifySnapshot(request, metadata=api.auth)
        assert raised.value.code() == code
    with pytest.raises(aio.AioRpcError) as raised:
        await api.stub.ListSnapshots(pb.ListSnapshotsRequest())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
