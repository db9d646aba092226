"""JSON API for documents: upload (raw body), list, download (streamed, audited), delete.

Upload: `POST .../{contacts|companies|deals}/{id}/documents` with the file as the raw
request body, its name in `X-Filename` (percent-encoded UTF-8 allowed) and its type
in `Content-Type`. The body is read as a stream and written in chunks; nothing is
buffered whole. Downloads are written to the tenant's audit log before a byte is
sent, and refused with 503 when the audit log cannot be reached.
"""

import uuid
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tresor_crm import documents
from tresor_crm.audit_client import AuditLog, audit_log, client_ip
from tresor_crm.db import Row
from tresor_crm.deps import ActorDep, ConnDep, DatabaseDep, SettingsDep
from tresor_crm.errors import InvalidInput, TooLarge

router = APIRouter(prefix="/s/{link}/api/v1", tags=["documents"])

AuditDep = Annotated[AuditLog, Depends(audit_log)]
OwnerPath = Literal["contacts", "companies", "deals"]


class DocumentOut(BaseModel):
    id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    contact_id: uuid.UUID | None
    company_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    uploaded_by: uuid.UUID | None
    uploaded_at: datetime


def document_out(row: Row) -> DocumentOut:
    return DocumentOut.model_validate(row)


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    """Refuses at once what announces itself as too large, before reading a byte."""
    if content_length and content_length.isdigit() and int(content_length) > max_bytes:
        raise TooLarge(f"a document may have at most {max_bytes} bytes")


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/{owner}/{owner_id}/documents",
    response_model=DocumentOut,
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"description": "larger than the configured maximum"}},
)
async def upload_document(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    settings: SettingsDep,
    owner: OwnerPath,
    owner_id: uuid.UUID,
    x_filename: Annotated[str, Header(min_length=1, max_length=2000)],
    content_type: Annotated[str | None, Header()] = None,
    content_length: Annotated[str | None, Header()] = None,
) -> DocumentOut:
    check_declared_length(content_length, settings.max_document_bytes)
    if content_type and content_type.lower().startswith("multipart/"):
        raise InvalidInput("send the file as the raw request body, not as a form")
    upload = documents.Upload(
        kind=documents.OWNER_KINDS[owner],
        owner_id=owner_id,
        filename=unquote(x_filename),
        content_type=content_type or documents.FALLBACK_TYPE,
    )
    row = await documents.store_upload(
        conn, actor, upload, request.stream(), max_bytes=settings.max_document_bytes
    )
    return document_out(row)


@router.get("/{owner}/{owner_id}/documents", response_model=list[DocumentOut])
async def list_documents(conn: ConnDep, owner: OwnerPath, owner_id: uuid.UUID) -> list[DocumentOut]:
    rows = await documents.list_for(conn, documents.OWNER_KINDS[owner], owner_id)
    return [document_out(r) for r in rows]


async def download_response(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    database: DatabaseDep,
    audit: AuditLog,
    document_id: uuid.UUID,
) -> StreamingResponse:
    """Shared by the API and the pages: audit first, then the bytes."""
    row = await documents.get(conn, document_id)
    await audit.record(
        tenant_id=actor.tenant_id,
        event="document.downloaded",
        actor_user_id=actor.user_id,
        client_ip=client_ip(request),
        details=documents.audit_details(row),
    )
    return StreamingResponse(
        documents.stream(database, actor.tenant_id, document_id),
        media_type=documents.served_type(row["content_type"]),
        headers={
            "Content-Disposition": documents.content_disposition(row["filename"]),
            "Content-Length": str(row["size_bytes"]),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get(
    "/documents/{document_id}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        503: {"description": "the audit log is unavailable: no unaudited download"},
    },
)
async def download_document(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    database: DatabaseDep,
    audit: AuditDep,
    document_id: uuid.UUID,
) -> StreamingResponse:
    return await download_response(request, actor, conn, database, audit, document_id)


@router.get("/documents/{document_id}/meta", response_model=DocumentOut)
async def document_meta(conn: ConnDep, document_id: uuid.UUID) -> DocumentOut:
    return document_out(await documents.get(conn, document_id))


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(conn: ConnDep, document_id: uuid.UUID) -> Response:
    await documents.delete(conn, document_id)
    return Response(status_code=204)
