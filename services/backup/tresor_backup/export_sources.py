"""Where an export reads from: the CRM's gRPC stream, the documents' chunks, auth.

Documents have no gRPC call in the CRM: they are read straight from the `crm`
database through the **backup export role**, a login role that may only SELECT
(`documents`, `document_chunks`, and the names of `contacts`, `companies`,
`deals`), has NOBYPASSRLS, and whose connections are read-only transactions
bound to the one tenant (`set_config('tresor.tenant_id', ...)`): row-level
security then keeps every query inside that tenant's rows, and every query
names the tenant as well. This role is not the snapshot role (which must see
every tenant).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import psycopg
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from grpc import aio
from psycopg.rows import dict_row

from tresor.auth.v1 import auth_pb2, auth_pb2_grpc
from tresor.crm.v1 import crm_pb2, crm_pb2_grpc
from tresor_backup.export import DocumentChunk, Forbidden, Unavailable
from tresor_common.grpc_tokens import BearerTokenInterceptor, bearer_metadata

AUDIT_PAGE_SIZE = 500
# Chunks are 256 KiB in the CRM: a few at a time keep memory at about a megabyte.
CHUNKS_PER_FETCH = 4
DOCUMENTS_PER_FETCH = 100

_DOCUMENTS = """
SELECT d.id,
       CASE WHEN d.contact_id IS NOT NULL THEN 'contact'
            WHEN d.company_id IS NOT NULL THEN 'company'
            ELSE 'deal' END AS record_type,
       coalesce(d.contact_id, d.company_id, d.deal_id) AS record_id,
       coalesce(concat_ws(', ', ct.last_name, nullif(ct.first_name, '')), co.name, de.title, '')
           AS record_name,
       d.filename, d.content_type, d.size_bytes, d.sha256, d.uploaded_at, d.uploaded_by
  FROM documents d
  LEFT JOIN contacts ct ON ct.tenant_id = d.tenant_id AND ct.id = d.contact_id
  LEFT JOIN companies co ON co.tenant_id = d.tenant_id AND co.id = d.company_id
  LEFT JOIN deals de ON de.tenant_id = d.tenant_id AND de.id = d.deal_id
 WHERE d.tenant_id = %(tenant)s AND d.complete
 ORDER BY 2, 3, d.uploaded_at, d.id
"""
_TOTALS = """
SELECT count(*) AS documents, coalesce(sum(size_bytes), 0)::bigint AS bytes
  FROM documents WHERE tenant_id = %(tenant)s AND complete
"""
_CHUNKS = """
SELECT seq, data FROM document_chunks
 WHERE tenant_id = %(tenant)s AND document_id = %(document)s AND seq > %(after)s
 ORDER BY seq LIMIT %(limit)s
"""

_ROLE_NAMES = {auth_pb2.ROLE_ADMIN: "admin", auth_pb2.ROLE_USER: "user"}


def message_dict(message: Message) -> dict[str, Any]:
    values: dict[str, Any] = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return values


def record_dict(message: Message) -> dict[str, Any]:
    values = message_dict(message)
    # Proto JSON writes 64-bit integers as strings; money is a number here.
    if "value_cents" in values:
        values["value_cents"] = int(values["value_cents"])
    return values


class CrmRecords:
    """The CRM's StreamTenantRecords, with the backup's service token."""

    def __init__(self, channel: aio.Channel, token: str) -> None:
        self._stub: Any = crm_pb2_grpc.CrmServiceStub(channel)
        self._metadata = bearer_metadata(token)

    async def records(self, tenant_id: uuid.UUID) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        request = crm_pb2.StreamTenantRecordsRequest(tenant_id=str(tenant_id))
        try:
            async for record in self._stub.StreamTenantRecords(request, metadata=self._metadata):
                kind = record.WhichOneof("record")
                if kind is None:
                    continue
                yield kind, record_dict(getattr(record, kind))
        except aio.AioRpcError as exc:
            raise Unavailable(f"crm: {exc.code().name}") from None


class CrmDocuments:
    """Documents of one tenant, read through the read-only backup export role."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url

    async def _connect(self, tenant_id: uuid.UUID) -> psycopg.AsyncConnection[dict[str, Any]]:
        conn = await psycopg.AsyncConnection.connect(self._url, row_factory=dict_row)
        await conn.set_read_only(True)
        await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        await conn.execute("SELECT set_config('tresor.tenant_id', %s, true)", (str(tenant_id),))
        return conn

    async def document_totals(self, tenant_id: uuid.UUID) -> tuple[int, int]:
        conn = await self._connect(tenant_id)
        async with conn:
            row = await (await conn.execute(_TOTALS, {"tenant": tenant_id})).fetchone()
        assert row is not None
        return int(row["documents"]), int(row["bytes"])

    async def documents(self, tenant_id: uuid.UUID) -> AsyncIterator[DocumentChunk]:
        conn = await self._connect(tenant_id)
        async with conn, conn.cursor(name="export_documents") as documents:
            documents.itersize = DOCUMENTS_PER_FETCH
            await documents.execute(_DOCUMENTS, {"tenant": tenant_id})
            async for document in documents:
                after = -1
                while True:
                    chunks = await conn.execute(
                        _CHUNKS,
                        {
                            "tenant": tenant_id,
                            "document": document["id"],
                            "after": after,
                            "limit": CHUNKS_PER_FETCH,
                        },
                    )
                    rows = await chunks.fetchall()
                    for row in rows:
                        after = row["seq"]
                        yield _chunk(document, after, bytes(row["data"]))
                    if len(rows) < CHUNKS_PER_FETCH:
                        break
                if after == -1:  # an empty file still gets its entry
                    yield _chunk(document, 0, b"")


def _chunk(document: Mapping[str, Any], seq: int, data: bytes) -> DocumentChunk:
    return DocumentChunk(
        document_id=str(document["id"]),
        record_type=document["record_type"],
        record_id=str(document["record_id"]),
        record_name=document["record_name"],
        filename=document["filename"],
        content_type=document["content_type"],
        size_bytes=int(document["size_bytes"]),
        sha256=document["sha256"],
        uploaded_at=document["uploaded_at"].isoformat(),
        uploaded_by=str(document["uploaded_by"] or ""),
        seq=seq,
        data=data,
    )


class AuthGateway:
    """Users, the audit log, and recording events, through the auth service."""

    def __init__(self, channel: aio.Channel, timeout_seconds: float) -> None:
        self._stub: Any = auth_pb2_grpc.AuthServiceStub(channel)
        self._timeout = timeout_seconds

    @staticmethod
    def channel(address: str, token: str) -> aio.Channel:
        interceptors: list[Any] = [BearerTokenInterceptor(token)]
        return aio.insecure_channel(address, interceptors=interceptors)

    async def users(self, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        try:
            response = await self._stub.ListUsers(
                auth_pb2.ListUsersRequest(actor=auth_pb2.Actor(), tenant_id=str(tenant_id)),
                timeout=self._timeout,
            )
        except aio.AioRpcError as exc:
            raise Unavailable(f"auth: {exc.code().name}") from None
        users = []
        for user in response.users:
            values = message_dict(user)
            values["roles"] = [_ROLE_NAMES.get(role, "unknown") for role in user.roles]
            values.pop("tenant_id", None)
            users.append(values)
        return users

    async def audit_events(self, tenant_id: uuid.UUID) -> AsyncIterator[list[dict[str, Any]]]:
        token = ""
        while True:
            try:
                response = await self._stub.ListAuditEvents(
                    auth_pb2.ListAuditEventsRequest(
                        actor=auth_pb2.Actor(),
                        tenant_id=str(tenant_id),
                        page_size=AUDIT_PAGE_SIZE,
                        page_token=token,
                    ),
                    timeout=self._timeout,
                )
            except aio.AioRpcError as exc:
                raise Unavailable(f"auth: {exc.code().name}") from None
            page = []
            for event in response.events:
                values = message_dict(event)
                values["seq"] = int(values["seq"])
                page.append(values)
            yield page
            token = response.next_page_token
            if not token:
                return

    async def require_admin(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Auth itself decides: it lists users only for an active admin of that tenant."""
        actor = auth_pb2.Actor(tenant_id=str(tenant_id), user_id=str(user_id))
        try:
            await self._stub.ListUsers(
                auth_pb2.ListUsersRequest(actor=actor, tenant_id=str(tenant_id)),
                timeout=self._timeout,
            )
        except aio.AioRpcError as exc:
            if exc.code() in (
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.INVALID_ARGUMENT,
            ):
                raise Forbidden("only an active admin of the tenant may do this") from None
            raise Unavailable(f"auth: {exc.code().name}") from None

    async def record(
        self,
        tenant_id: uuid.UUID,
        event: str,
        *,
        actor_user_id: uuid.UUID | None,
        client_ip: str,
        details: Mapping[str, Any],
    ) -> None:
        request = auth_pb2.RecordAuditEventRequest(
            tenant_id=str(tenant_id),
            event=event,
            actor_user_id=str(actor_user_id) if actor_user_id else "",
            client_ip=client_ip,
            details_json=json.dumps(dict(details), sort_keys=True),
        )
        try:
            await self._stub.RecordAuditEvent(request, timeout=self._timeout)
        except aio.AioRpcError as exc:
            raise Unavailable(f"audit log: {exc.code().name}") from None


class ExportSourcesImpl:
    """The three together, as export.ExportSources."""

    def __init__(self, crm: CrmRecords, documents: CrmDocuments, auth: AuthGateway) -> None:
        self._crm, self._documents, self._auth = crm, documents, auth

    def records(self, tenant_id: uuid.UUID) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._crm.records(tenant_id)

    async def document_totals(self, tenant_id: uuid.UUID) -> tuple[int, int]:
        return await self._documents.document_totals(tenant_id)

    def documents(self, tenant_id: uuid.UUID) -> AsyncIterator[DocumentChunk]:
        return self._documents.documents(tenant_id)

    async def users(self, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        return await self._auth.users(tenant_id)

    def audit_events(self, tenant_id: uuid.UUID) -> AsyncIterator[list[dict[str, Any]]]:
        return self._auth.audit_events(tenant_id)
