"""gRPC servicer: request to domain call, result or error to response, nothing more."""

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from tresor.backup.v1 import backup_pb2 as pb
from tresor.backup.v1 import backup_pb2_grpc
from tresor_backup import daily, export
from tresor_backup.daily import SnapshotInfo, SnapshotJobs
from tresor_backup.export import ExportJob, ExportService
from tresor_common.grpc_server import Context, StatusTranslator

log = logging.getLogger(__name__)


OPEN_CHUNK_BYTES = 256 * 1024

_STATUS: dict[type[Exception], grpc.StatusCode] = {
    export.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    export.NotFound: grpc.StatusCode.NOT_FOUND,
    export.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    export.Unavailable: grpc.StatusCode.UNAVAILABLE,
    daily.AlreadyRunning: grpc.StatusCode.FAILED_PRECONDITION,
    daily.UnknownSnapshot: grpc.StatusCode.NOT_FOUND,
}
_SNAPSHOT_STATE = {
    "running": pb.SNAPSHOT_STATE_RUNNING,
    "complete": pb.SNAPSHOT_STATE_COMPLETE,
    "failed": pb.SNAPSHOT_STATE_FAILED,
}
_STATE = {
    "queued": pb.EXPORT_STATE_QUEUED,
    "running": pb.EXPORT_STATE_RUNNING,
    "done": pb.EXPORT_STATE_DONE,
    "failed": pb.EXPORT_STATE_FAILED,
}


translated = StatusTranslator(_STATUS, log)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def _optional_user(value: str) -> uuid.UUID | None:
    return export.parse_uuid(value, "actor_user_id") if value else None


def snapshot_pb(info: SnapshotInfo) -> pb.Snapshot:
    return pb.Snapshot(
        id=info.id,
        state=_SNAPSHOT_STATE[info.state],
        started_at=_timestamp(info.started_at),
        finished_at=_timestamp(info.finished_at),
        size_bytes=info.size_bytes,
        verified_at=_timestamp(info.verified_at),
        error=info.error,
    )


def export_pb(job: ExportJob) -> pb.Export:
    p = job.progress
    return pb.Export(
        export_id=job.export_id,
        tenant_id=job.tenant_id,
        state=_STATE[job.state],
        progress=pb.ExportProgress(
            phase=p.phase,
            records=p.records,
            documents=p.documents,
            documents_total=p.documents_total,
            document_bytes=p.document_bytes,
            document_bytes_total=p.document_bytes_total,
            users=p.users,
            audit_events=p.audit_events,
        ),
        requested_at=_timestamp(job.requested_at),
        finished_at=_timestamp(job.finished_at),
        expires_at=_timestamp(job.expires_at),
        size_bytes=job.size_bytes,
        sha256=job.sha256,
        error=job.error,
        requested_by_user_id=job.requested_by,
    )


class BackupServicer(backup_pb2_grpc.BackupServiceServicer):
    def __init__(self, exports: ExportService, snapshots: SnapshotJobs) -> None:
        self._exports = exports
        self._snapshots = snapshots

    @translated
    async def StartSnapshot(
        self, request: pb.StartSnapshotRequest, context: Context
    ) -> pb.Snapshot:
        return snapshot_pb(await self._snapshots.start())

    @translated
    async def ListSnapshots(
        self, request: pb.ListSnapshotsRequest, context: Context
    ) -> pb.ListSnapshotsResponse:
        return pb.ListSnapshotsResponse(
            snapshots=[snapshot_pb(info) for info in self._snapshots.list_all()]
        )

    @translated
    async def VerifySnapshot(
        self, request: pb.VerifySnapshotRequest, context: Context
    ) -> pb.VerifySnapshotResponse:
        if not request.snapshot_id:
            raise export.InvalidArgument("snapshot_id: required")
        result = await self._snapshots.verify(request.snapshot_id)
        return pb.VerifySnapshotResponse(
            snapshot_id=result.snapshot_id, ok=result.ok, problems=result.problems
        )

    @translated
    async def StartExport(self, request: pb.StartExportRequest, context: Context) -> pb.Export:
        job = await self._exports.start(
            export.parse_uuid(request.tenant_id, "tenant_id"),
            actor_user_id=_optional_user(request.actor_user_id),
            client_ip=request.client_ip,
        )
        return export_pb(job)

    @translated
    async def ExportStatus(self, request: pb.ExportStatusRequest, context: Context) -> pb.Export:
        job = self._exports.status(
            export.parse_uuid(request.tenant_id, "tenant_id"),
            export.parse_uuid(request.export_id, "export_id"),
        )
        return export_pb(job)

    async def OpenExport(
        self, request: pb.OpenExportRequest, context: Context
    ) -> AsyncIterator[pb.ExportChunk]:
        try:
            tenant_id = export.parse_uuid(request.tenant_id, "tenant_id")
            job, path = await self._exports.open(
                tenant_id,
                export.parse_uuid(request.export_id, "export_id"),
                actor_user_id=_optional_user(request.actor_user_id),
                client_ip=request.client_ip,
            )
            first = True
            async for block in export.read_chunks(path, OPEN_CHUNK_BYTES):
                if first:
                    yield pb.ExportChunk(
                        data=block,
                        filename=f"tresor-export-{job.export_id}.zip",
                        size_bytes=job.size_bytes,
                    )
                    first = False
                else:
                    yield pb.ExportChunk(data=block)
        except aio.AbortError:
            raise
        except Exception as exc:
            await translated.abort(context, exc, "OpenExport")
