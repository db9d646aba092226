"""The backup gRPC API over a real socket: exports start, report, stream, stay in their tenant."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from tests.auth.harness import SERVICE_TOKEN
from tests.backup.export_harness import ExportWorld, export_world
from tests.crm.harness import CrmHarness
from tresor.backup.v1 import backup_pb2 as pb
from tresor.backup.v1 import backup_pb2_grpc
from tresor_backup.config import BackupSettings
from tresor_backup.server import BackupServer, create_server
from tresor_common.grpc_tokens import bearer_metadata


@dataclass
class Backup:
    stub: Any
    channel: aio.Channel
    token: str
    server: BackupServer
    world: ExportWorld

    @property
    def auth(self) -> tuple[tuple[str, str]]:
        return bearer_metadata(self.token)


@pytest.fixture
async def backup(
    start_auth: Callable[..., Any], crm: CrmHarness, tmp_path: Path, postgres_admin_url: str
) -> AsyncIterator[Backup]:
    async with export_world(start_auth, crm, tmp_path / "exports", postgres_admin_url) as world:
        token = secrets.token_urlsafe(24)
        settings = BackupSettings(
            environment="development",
            auth_database_url=postgres_admin_url,
            crm_database_url=crm.owner_url,
            key=SecretStr(base64.b64encode(os.urandom(32)).decode()),
            directory=tmp_path / "snapshots",
            service_tokens=SecretStr(token),
            export_directory=tmp_path / "exports",
            export_crm_database_url=world.documents_url,
            crm_grpc_address=world.crm_address,
            crm_service_token=SecretStr(world.crm_token),
            auth_address=world.auth.address,
            auth_service_token=SecretStr(SERVICE_TOKEN),
        )
        server = await create_server(settings, "127.0.0.1:0")
        channel = aio.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            yield Backup(backup_pb2_grpc.BackupServiceStub(channel), channel, token, server, world)
        finally:
            await channel.close(None)
            await server.stop(grace=0)


async def _code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(aio.AioRpcError) as raised:
        await call
    code: grpc.StatusCode = raised.value.code()
    return code


async def _done(backup: Backup, tenant_id: str, export_id: str) -> pb.Export:
    for _ in range(200):
        status: pb.Export = await backup.stub.ExportStatus(
            pb.ExportStatusRequest(tenant_id=tenant_id, export_id=export_id), metadata=backup.auth
        )
        if status.state in (pb.EXPORT_STATE_DONE, pb.EXPORT_STATE_FAILED):
            return status
        await asyncio.sleep(0.05)
    pytest.fail("export did not finish")


async def _download(
    backup: Backup, request: pb.OpenExportRequest
) -> tuple[list[pb.ExportChunk], bytes]:
    chunks = [chunk async for chunk in backup.stub.OpenExport(request, metadata=backup.auth)]
    return chunks, b"".join(chunk.data for chunk in chunks)


async def test_export_over_grpc_start_status_open(backup: Backup, tmp_path: Path) -> None:
    world = backup.world
    alpha, bravo = await world.tenant("alpha"), await world.tenant("bravo")
    await world.seed(alpha, "Alpha", contacts=3)
    await world.document(
        alpha, record=("contact", alpha.contacts[0]), filename="a.pdf", size=600_000
    )

    started: pb.Export = await backup.stub.StartExport(
        pb.StartExportRequest(tenant_id=alpha.id, actor_user_id=alpha.admin.id, client_ip="::1"),
        metadata=backup.auth,
    )
    assert started.state in (pb.EXPORT_STATE_QUEUED, pb.EXPORT_STATE_RUNNING)
    assert started.requested_by_user_id == alpha.admin.id
    status = await _done(backup, alpha.id, started.export_id)
    assert status.state == pb.EXPORT_STATE_DONE, status.error
    assert status.progress.documents == status.progress.documents_total == 1
    assert status.progress.document_bytes == 600_000
    assert status.progress.records == 1 + 3 + 1 + 1 + 1
    assert status.expires_at.ToSeconds() - status.finished_at.ToSeconds() == 24 * 3600

    request = pb.OpenExportRequest(
        tenant_id=alpha.id, export_id=started.export_id, actor_user_id=alpha.admin.id
    )
    chunks, body = await _download(backup, request)
    assert chunks[0].filename == f"tresor-export-{started.export_id}.zip"
    assert chunks[0].size_bytes == len(body) == status.size_bytes
    assert hashlib.sha256(body).hexdigest() == status.sha256
    (tmp_path / "got.zip").write_bytes(body)
    with zipfile.ZipFile(tmp_path / "got.zip") as archive:
        assert "index.html" in archive.namelist()

    # Another tenant's admin, or an id of another tenant: not found, nothing streamed.
    for tenant, actor in ((bravo.id, bravo.admin.id), (bravo.id, "")):
        mismatched = pb.OpenExportRequest(
            tenant_id=tenant, export_id=started.export_id, actor_user_id=actor
        )
        assert await _code_of(_download(backup, mismatched)) == grpc.StatusCode.NOT_FOUND
        assert (
            await _code_of(
                backup.stub.ExportStatus(
                    pb.ExportStatusRequest(tenant_id=tenant, export_id=started.export_id),
                    metadata=backup.auth,
                )
            )
            == grpc.StatusCode.NOT_FOUND
        )
    events = [event.event for event in await world.audit_events(alpha.id)]
    assert events.count("export.downloaded") == 1
    assert {"export.requested", "export.completed"} <= set(events)


async def test_a_non_admin_cannot_export_or_download(backup: Backup) -> None:
    world = backup.world
    alpha = await world.tenant("alpha")
    refused = backup.stub.StartExport(
        pb.StartExportRequest(tenant_id=alpha.id, actor_user_id=alpha.user.id),
        metadata=backup.auth,
    )
    assert await _code_of(refused) == grpc.StatusCode.PERMISSION_DENIED
    started = await backup.stub.StartExport(
        pb.StartExportRequest(tenant_id=alpha.id), metadata=backup.auth
    )
    await _done(backup, alpha.id, started.export_id)
    request = pb.OpenExportRequest(
        tenant_id=alpha.id, export_id=started.export_id, actor_user_id=alpha.user.id
    )
    assert await _code_of(_download(backup, request)) == grpc.StatusCode.PERMISSION_DENIED


async def test_bad_ids_and_missing_tokens_are_refused(backup: Backup) -> None:
    bad = backup.stub.ExportStatus(
        pb.ExportStatusRequest(tenant_id="../x", export_id=str(uuid.uuid4())),
        metadata=backup.auth,
    )
    assert await _code_of(bad) == grpc.StatusCode.INVALID_ARGUMENT
    unknown = backup.stub.ExportStatus(
        pb.ExportStatusRequest(tenant_id=str(uuid.uuid4()), export_id=str(uuid.uuid4())),
        metadata=backup.auth,
    )
    assert await _code_of(unknown) == grpc.StatusCode.NOT_FOUND
    without = backup.stub.StartExport(pb.StartExportRequest(tenant_id=str(uuid.uuid4())))
    assert await _code_of(without) == grpc.StatusCode.UNAUTHENTICATED


async def test_health_answers_without_a_token(backup: Backup) -> None:
    health = health_pb2_grpc.HealthStub(backup.channel)
    for service in ("", "tresor.backup.v1.BackupService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
