"""Pages for documents: the section on a record's page, the streamed upload form, download.

The browser form is multipart/form-data. It is parsed as it arrives with
python-multipart's streaming parser (not `request.form()`, which would spool a
large file to a temporary file): the `csrf` field must come before the file —
browsers send fields in the form's order — and the file's bytes go straight into
the document's chunks. Memory holds one network read and one chunk; nothing
touches the disk. Download is the API's audited, streamed response.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from python_multipart.multipart import MultipartParser, parse_options_header

from tresor_crm import documents, i18n, web
from tresor_crm.api_documents import check_declared_length, download_response
from tresor_crm.audit_client import AuditLog, audit_log
from tresor_crm.db import Conn
from tresor_crm.deps import ActorDep, ConnDep, DatabaseDep, SettingsDep
from tresor_crm.errors import InvalidInput
from tresor_crm.identity import Actor
from tresor_crm.storage.documents import OwnerKind

router = APIRouter(prefix="/s/{link}", include_in_schema=False)

RecordType = Literal["contact", "company", "deal"]
MAX_FIELD_BYTES = 4096
MAX_HELD_BYTES = 64 * 1024

i18n.add_texts(
    "de",
    {
        "documents": "Dokumente",
        "documents_upload": "Hochladen",
        "documents_file": "Datei",
        "documents_none": "Noch keine Dokumente.",
        "documents_delete": "Löschen",
        "documents_size": "Größe",
        "documents_uploaded": "Hochgeladen",
        "documents_max": "Höchstens {mb} MB. Jeder Download wird im Audit-Log vermerkt.",
        "documents_all": "Alle Dokumente",
    },
)
i18n.add_texts(
    "en",
    {
        "documents": "Documents",
        "documents_upload": "Upload",
        "documents_file": "File",
        "documents_none": "No documents yet.",
        "documents_delete": "Delete",
        "documents_size": "Size",
        "documents_uploaded": "Uploaded",
        "documents_max": "At most {mb} MB. Every download is written to the audit log.",
        "documents_all": "All documents",
    },
)


def _record_page(record_type: str, record_id: uuid.UUID) -> str:
    plural = {"contact": "contacts", "company": "companies", "deal": "deals"}[record_type]
    return f"{plural}/{record_id}"


async def record_section(conn: Conn, record_type: str, record_id: uuid.UUID) -> dict[str, Any]:
    """What `documents/_record_section.html` lists for one record (for the detail pages)."""
    kind: OwnerKind = record_type  # type: ignore[assignment]
    return {"section_documents": await documents.list_for(conn, kind, record_id)}


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} MB"


@router.get("/records/{record_type}/{record_id}/documents", response_class=HTMLResponse)
async def documents_page(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    settings: SettingsDep,
    record_type: RecordType,
    record_id: uuid.UUID,
) -> Response:
    rows = await documents.list_for(conn, record_type, record_id)
    return await web.render(
        request,
        actor,
        "documents/page.html",
        record_type=record_type,
        record_id=record_id,
        record_page=_record_page(record_type, record_id),
        section_documents=rows,
        max_mb=settings.max_document_bytes // (1024 * 1024),
        human_size=human_size,
    )


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.filename: str | None = None
        self.content_type = ""
        self.value = bytearray()


class StreamedForm:
    """A multipart body read as it arrives: small fields first, then one file, streamed."""

    def __init__(self, request: Request, actor: Actor) -> None:
        content_type, options = parse_options_header(request.headers.get("content-type"))
        boundary = options.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise InvalidInput("expected a multipart/form-data upload", {"file": "no file"})
        self._actor = actor
        self._stream = request.stream().__aiter__()
        self._current: _Part | None = None
        self._header_name = b""
        self._header_value = b""
        self._fields: dict[str, str] = {}
        # Everything but the file (field values and part headers) is held in memory: capped.
        self._held = 0
        self._file: _Part | None = None
        self._file_done = False
        self._pending: list[bytes] = []
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_cb,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    # parser callbacks (synchronous; they only collect)
    def _part_begin(self) -> None:
        self._current = _Part()
        self._header_name = self._header_value = b""

    def _hold(self, size: int) -> None:
        self._held += size
        if self._held > MAX_HELD_BYTES:
            raise InvalidInput("the form is too large")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hold(end - start)
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._hold(end - start)
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        assert self._current is not None
        self._current.headers[self._header_name.lower()] = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        part = self._current
        assert part is not None
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if self._file is not None:
                raise InvalidInput("one file per upload", {"file": "one file per upload"})
            # Nothing of the file is accepted before the form's token was checked.
            web.check_csrf(self._actor, self._fields.get("csrf"))
            part.filename = options[b"filename"].decode("utf-8", "replace")
            part.content_type = part.headers.get(b"content-type", b"").decode("latin-1")
            self._file = part

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        assert part is not None
        if part.filename is not None:
            self._pending.append(bytes(data[start:end]))
        else:
            self._hold(end - start)
            part.value += data[start:end]
            if len(part.value) > MAX_FIELD_BYTES:
                raise InvalidInput("a form field is too long")

    def _part_end(self) -> None:
        part = self._current
        if part is not None and part.filename is None and part.name:
            self._fields[part.name] = part.value.decode("utf-8", "replace")
        elif part is not None and part.filename is not None:
            self._file_done = True

    def _end(self) -> None:
        self._ended = True

    async def _feed(self) -> bool:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            return False
        if chunk:
            self._parser.write(chunk)
        return True

    async def open_file(self) -> _Part:
        """Reads up to the file's headers; the fields before it are in `fields`."""
        while self._file is None:
            if self._ended or not await self._feed():
                raise InvalidInput("no file was chosen", {"file": "no file chosen"})
        return self._file

    @property
    def fields(self) -> dict[str, str]:
        return self._fields

    async def file_body(self) -> AsyncIterator[bytes]:
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if self._file_done or self._ended:
                return
            if not await self._feed():
                return


@router.post("/records/{record_type}/{record_id}/documents")
async def upload(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    settings: SettingsDep,
    record_type: RecordType,
    record_id: uuid.UUID,
) -> Response:
    check_declared_length(
        request.headers.get("content-length"), settings.max_document_bytes + 64 * 1024
    )
    form = StreamedForm(request, actor)
    part = await form.open_file()
    if not part.filename:
        raise InvalidInput("no file was chosen", {"file": "no file chosen"})
    await documents.store_upload(
        conn,
        actor,
        documents.Upload(record_type, record_id, part.filename, part.content_type),
        form.file_body(),
        max_bytes=settings.max_document_bytes,
    )
    target = web.safe_next(actor, form.fields.get("next"), _record_page(record_type, record_id))
    return web.redirect(actor, target.removeprefix(actor.prefix + "/"))


@router.get("/documents/{document_id}/download")
async def download(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    database: DatabaseDep,
    audit: Annotated[AuditLog, Depends(audit_log)],
    document_id: uuid.UUID,
) -> StreamingResponse:
    return await download_response(request, actor, conn, database, audit, document_id)


@router.post("/documents/{document_id}/delete")
async def delete(
    actor: ActorDep,
    conn: ConnDep,
    document_id: uuid.UUID,
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    web.check_csrf(actor, csrf)
    await documents.delete(conn, document_id)
    target = web.safe_next(actor, next or None, "")
    return web.redirect(actor, target.removeprefix(actor.prefix + "/"))
