"""The backup service, seen from the CRM: a tenant admin's exports (StartExport, ExportStatus,
OpenExport over gRPC).

The backup service decides who may export (it asks auth whether the actor is an active
admin of the tenant) and writes the audit events ("export.requested", and
"export.downloaded" inside OpenExport): the CRM passes the actor and the client address and
writes nothing itself. One long-lived channel per process, created lazily inside the running
event loop (a grpc.aio channel belongs to the loop it was made in); a deadline on every unary
call and on every wait for the next chunk of a download. Errors become the CRM's own:
unknown or another tenant's export → NotFound, refused → Forbidden, anything else →
Unavailable (the 503 page).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from fastapi import Request
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from tresor.backup.v1 import backup_pb2 as pb
from tresor.backup.v1 import backup_pb2_grpc
from tresor_common.grpc_tokens import bearer_metadata
from tresor_crm.config import CrmSettings
from tresor_crm.errors import CrmError, Forbidden, NotFound, Unavailable
from tresor_crm.identity import Actor

log = logging.getLogger("tresor_crm.backup")

# What a stream's read() returns at its end (missing from the grpc stubs).
_EOF: object = aio.EOF  # type: ignore[attr-defined]

_STATES = {
    pb.EXPORT_STATE_QUEUED: "queued",
    pb.EXPORT_STATE_RUNNING: "running",
    pb.EXPORT_STATE_DONE: "done",
    pb.EXPORT_STATE_FAILED: "failed",
}


class ExportsNotConfigured(Unavailable):
    """No backup address or token in the settings: exports are switched off."""


@dataclass(frozen=True)
class ExportView:
    """One export as the pages show it."""

    id: str
    state: str  # "queued", "running", "done", "failed"
    phase: str
    records: int
    documents: int
    documents_total: int
    document_bytes: int
    document_bytes_total: int
    users: int
    audit_events: int
    requested_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    size_bytes: int
    sha256: str
    error: str
    requested_by: str

    @property
    def running(self) -> bool:
        return self.state in ("queued", "running")


@dataclass
class Download:
    """An opened export: the first chunk is already read, the rest follows in `chunks()`."""

    filename: str
    size_bytes: int
    _first: bytes
    _call: Any
    _timeout: float

    async def chunks(self) -> AsyncIterator[bytes]:
        """The ZIP's bytes, one gRPC chunk at a time; cancels the call when abandoned."""
        try:
            if self._first:
                yield self._first
            while True:
                message = await asyncio.wait_for(self._call.read(), self._timeout)
                if message is _EOF:
                    return
                if message.data:
                    yield message.data
        finally:
            self.cancel()

    def cancel(self) -> None:
        if not self._call.done():
            self._call.cancel()


def _when(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def export_view(message: pb.Export) -> ExportView:
    p = message.progress
    return ExportView(
        id=message.export_id,
        state=_STATES.get(message.state, "failed"),
        phase=p.phase,
        records=p.records,
        documents=p.documents,
        documents_total=p.documents_total,
        document_bytes=p.document_bytes,
        document_bytes_total=p.document_bytes_total,
        users=p.users,
        audit_events=p.audit_events,
        requested_at=_when(message.requested_at, message.HasField("requested_at")),
        finished_at=_when(message.finished_at, message.HasField("finished_at")),
        expires_at=_when(message.expires_at, message.HasField("expires_at")),
        size_bytes=message.size_bytes,
        sha256=message.sha256,
        error=message.error,
        requested_by=message.requested_by_user_id,
    )


def _translated(exc: aio.AioRpcError, rpc: str) -> CrmError:
    code = exc.code()
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return NotFound("no such export, or it has expired")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return Forbidden("only an active admin of this tenant may do this")
    log.warning("backup service call failed", extra={"rpc": rpc, "code": code.name})
    return Unavailable("the backup service is unavailable; try again shortly")


class BackupClient:
    def __init__(self, address: str | None, token: str | None, timeout_seconds: float) -> None:
        self._address = address
        self._token = token
        self._timeout = timeout_seconds
        self._channel: aio.Channel | None = None
        self._stub: backup_pb2_grpc.BackupServiceAsyncStub | None = None

    @classmethod
    def from_settings(cls, settings: CrmSettings) -> BackupClient:
        token = settings.backup_service_token
        return cls(
            settings.backup_address,
            token.get_secret_value() if token is not None else None,
            settings.backup_timeout_seconds,
        )

    @property
    def configured(self) -> bool:
        return bool(self._address and self._token)

    def _ensure_stub(self) -> backup_pb2_grpc.BackupServiceAsyncStub:
        if not self.configured:
            raise ExportsNotConfigured("exports are not available")
        if self._stub is None:
            assert self._address is not None
            self._channel = aio.insecure_channel(
                self._address, options=[("grpc.keepalive_time_ms", 30_000)]
            )
            self._stub = backup_pb2_grpc.BackupServiceStub(self._channel)
        assert self._stub is not None
        return self._stub

    def _metadata(self) -> tuple[tuple[str, str]]:
        assert self._token is not None
        return bearer_metadata(self._token)

    async def start_export(self, actor: Actor, client_ip: str | None) -> ExportView:
        request = pb.StartExportRequest(
            tenant_id=str(actor.tenant_id),
            actor_user_id=str(actor.user_id),
            client_ip=client_ip or "",
        )
        stub = self._ensure_stub()
        try:
            reply = await stub.StartExport(
                request, timeout=self._timeout, metadata=self._metadata()
            )
        except aio.AioRpcError as exc:
            raise _translated(exc, "StartExport") from None
        return export_view(reply)

    async def export_status(self, actor: Actor, export_id: uuid.UUID) -> ExportView:
        request = pb.ExportStatusRequest(tenant_id=str(actor.tenant_id), export_id=str(export_id))
        stub = self._ensure_stub()
        try:
            reply = await stub.ExportStatus(
                request, timeout=self._timeout, metadata=self._metadata()
            )
        except aio.AioRpcError as exc:
            raise _translated(exc, "ExportStatus") from None
        return export_view(reply)

    async def open_export(
        self, actor: Actor, export_id: uuid.UUID, client_ip: str | None
    ) -> Download:
        """Opens the download and reads its first chunk, so that a refusal is still a page."""
        request = pb.OpenExportRequest(
            tenant_id=str(actor.tenant_id),
            export_id=str(export_id),
            actor_user_id=str(actor.user_id),
            client_ip=client_ip or "",
        )
        stub = self._ensure_stub()
        call: Any = stub.OpenExport(request, metadata=self._metadata())
        try:
            first = await asyncio.wait_for(call.read(), self._timeout)
        except aio.AioRpcError as exc:
            raise _translated(exc, "OpenExport") from None
        except TimeoutError:
            call.cancel()
            log.warning("backup service call timed out", extra={"rpc": "OpenExport"})
            raise Unavailable("the backup service is unavailable; try again shortly") from None
        if first is _EOF:
            call.cancel()
            raise Unavailable("the backup service sent an empty export")
        return Download(first.filename, first.size_bytes, first.data, call, self._timeout)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = None
        self._stub = None


def backup_client(request: Request) -> BackupClient:
    """The app's backup client, made on first use (FastAPI dependency)."""
    state = request.app.state
    existing: BackupClient | None = getattr(state, "backup_client", None)
    if existing is None:
        existing = BackupClient.from_settings(state.settings)
        state.backup_client = existing
    return existing
