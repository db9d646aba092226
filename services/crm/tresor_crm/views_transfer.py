"""Pages for CSV import and export: choose, preview, confirm, result; download a list.

Import takes two steps and keeps nothing between them: the upload is streamed
(python-multipart, via the documents area's `StreamedForm`), held in memory only up
to the domain's 5 MB limit, checked and shown as a preview with every bad row. The
confirm form asks for the same file again and carries only its SHA-256: the second
upload is imported only if it is the file that was previewed, otherwise its own
preview is shown. So there is no pending import in the database (which would need a
table and a clean-up), none in the process (lost on restart, wrong with several
replicas), and nothing left on the user's machine; the import re-checks every row.

Export is the API's audited, streamed response behind a page URL, so that a failure
(the audit log unreachable) is a friendly page rather than problem+json.
"""

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from tresor_crm import i18n, transfer, web
from tresor_crm.api_documents import check_declared_length
from tresor_crm.api_transfer import ENTITIES, export_response
from tresor_crm.audit_client import AuditLog, audit_log
from tresor_crm.db import Database
from tresor_crm.deps import ActorDep, DatabaseDep
from tresor_crm.errors import InvalidInput, TooLarge
from tresor_crm.identity import Actor
from tresor_crm.records import ListQuery
from tresor_crm.views_documents import StreamedForm

router = APIRouter(prefix="/s/{link}", include_in_schema=False)

EntityPath = Literal["contacts", "companies"]
# Room for the form's small fields and the multipart framing around the file.
_FORM_OVERHEAD = 64 * 1024

i18n.add_texts(
    "de",
    {
        "transfer_title": "Import und Export",
        "transfer_export": "Export",
        "transfer_export_text": (
            "Lädt die Liste als CSV-Datei herunter (UTF-8, Semikolon, für Excel). Mit einem "
            "Suchbegriff nur die passenden Einträge. Jeder Export wird im Audit-Log vermerkt."
        ),
        "transfer_export_contacts": "Kontakte exportieren",
        "transfer_export_companies": "Firmen exportieren",
        "transfer_import": "Import",
        "transfer_import_text": (
            "CSV-Datei mit Kopfzeile (Spaltennamen deutsch oder englisch, z. B. Vorname; "
            "Nachname; E-Mail; Firma), höchstens {mb} MB. Sie sehen zuerst eine Vorschau; "
            "importiert wird erst nach Ihrer Bestätigung."
        ),
        "transfer_entity": "Art der Einträge",
        "transfer_file": "CSV-Datei",
        "transfer_preview_button": "Vorschau anzeigen",
        "transfer_preview": "Vorschau des Imports",
        "transfer_rows": "Zeilen",
        "transfer_good": "fehlerfrei",
        "transfer_bad": "fehlerhaft",
        "transfer_delimiter": "Trennzeichen",
        "transfer_columns": "Erkannte Spalten",
        "transfer_unknown": "Nicht zugeordnete Spalten (werden ignoriert)",
        "transfer_first_rows": "Die ersten Zeilen, wie sie gelesen wurden",
        "transfer_line": "Zeile",
        "transfer_status": "Status",
        "transfer_ok": "in Ordnung",
        "transfer_problems": "Fehlerhafte Zeilen (werden nicht importiert)",
        "transfer_reason": "Grund",
        "transfer_no_problems": "Keine fehlerhaften Zeilen.",
        "transfer_confirm": "Import bestätigen",
        "transfer_confirm_text": (
            "Zum Importieren wählen Sie bitte dieselbe Datei noch einmal; sie wird nirgends "
            "zwischengespeichert. Importiert werden die {good} fehlerfreien Zeilen."
        ),
        "transfer_confirm_button": "Jetzt importieren",
        "transfer_nothing_to_import": "Keine Zeile kann importiert werden.",
        "transfer_other_file": (
            "Diese Datei ist nicht die aus der Vorschau. Nichts wurde importiert; unten sehen "
            "Sie die Vorschau der neuen Datei."
        ),
        "transfer_result": "Import abgeschlossen",
        "transfer_imported": "{n} Einträge importiert.",
        "transfer_refused": "Nicht importierte Zeilen",
        "transfer_again": "Weitere Datei importieren",
        "transfer_no_file": "Bitte wählen Sie eine Datei.",
        "transfer_entity_contact": "Kontakte",
        "transfer_entity_company": "Firmen",
        "transfer_field_company": "Firma",
        "transfer_field_row": "Zeile",
    },
)
i18n.add_texts(
    "en",
    {
        "transfer_title": "Import and export",
        "transfer_export": "Export",
        "transfer_export_text": (
            "Downloads the list as a CSV file (UTF-8, semicolon, for Excel). With a search "
            "term only the matching entries. Every export is written to the audit log."
        ),
        "transfer_export_contacts": "Export contacts",
        "transfer_export_companies": "Export companies",
        "transfer_import": "Import",
        "transfer_import_text": (
            "A CSV file with a header line (column names in English or German, e.g. "
            "first_name; last_name; email; company), at most {mb} MB. You see a preview "
            "first; nothing is imported before you confirm."
        ),
        "transfer_entity": "Kind of entries",
        "transfer_file": "CSV file",
        "transfer_preview_button": "Show preview",
        "transfer_preview": "Import preview",
        "transfer_rows": "rows",
        "transfer_good": "good",
        "transfer_bad": "with errors",
        "transfer_delimiter": "Delimiter",
        "transfer_columns": "Recognised columns",
        "transfer_unknown": "Columns not recognised (ignored)",
        "transfer_first_rows": "The first rows as they were read",
        "transfer_line": "Line",
        "transfer_status": "Status",
        "transfer_ok": "fine",
        "transfer_problems": "Rows with errors (not imported)",
        "transfer_reason": "Reason",
        "transfer_no_problems": "No rows with errors.",
        "transfer_confirm": "Confirm the import",
        "transfer_confirm_text": (
            "To import, please choose the same file again; it is not kept anywhere in "
            "between. The {good} good rows will be imported."
        ),
        "transfer_confirm_button": "Import now",
        "transfer_nothing_to_import": "No row can be imported.",
        "transfer_other_file": (
            "This is not the file of the preview. Nothing was imported; below is the preview "
            "of the new file."
        ),
        "transfer_result": "Import finished",
        "transfer_imported": "{n} entries imported.",
        "transfer_refused": "Rows not imported",
        "transfer_again": "Import another file",
        "transfer_no_file": "Please choose a file.",
        "transfer_entity_contact": "Contacts",
        "transfer_entity_company": "Companies",
        "transfer_field_company": "Company",
        "transfer_field_row": "Row",
    },
)


class _Upload:
    """A CSV upload read from the streamed form: its fields and bytes (at most 5 MB)."""

    def __init__(self, fields: dict[str, str], data: bytes) -> None:
        self.fields = fields
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()

    @property
    def entity(self) -> transfer.Entity:
        return "company" if self.fields.get("entity") == "company" else "contact"


async def _read_upload(request: Request, actor: Actor) -> _Upload:
    limit = transfer.MAX_IMPORT_BYTES
    too_large = f"at most {limit // (1024 * 1024)} MB per import"
    try:
        check_declared_length(request.headers.get("content-length"), limit + _FORM_OVERHEAD)
    except TooLarge:
        raise TooLarge(too_large) from None
    form = StreamedForm(request, actor)
    part = await form.open_file()
    if not part.filename:
        raise InvalidInput("no file was chosen", {"file": "no file chosen"})
    data = bytearray()
    async for piece in form.file_body():
        data += piece
        if len(data) > limit:
            raise TooLarge(too_large)
    return _Upload(dict(form.fields), bytes(data))


async def _start_page(
    request: Request,
    actor: Actor,
    *,
    entity: str = "contact",
    error: str | None = None,
    status: int = 200,
    q: str = "",
) -> HTMLResponse:
    return await web.render(
        request,
        actor,
        "transfer/index.html",
        status=status,
        nav="transfer",
        entity=entity,
        error=error,
        q=q,
        max_mb=transfer.MAX_IMPORT_BYTES // (1024 * 1024),
    )


async def _preview_page(
    request: Request,
    actor: Actor,
    upload: _Upload,
    plan: transfer.ImportPlan,
    *,
    other_file: bool = False,
) -> HTMLResponse:
    return await web.render(
        request,
        actor,
        "transfer/preview.html",
        status=409 if other_file else 200,
        nav="transfer",
        entity=plan.entity,
        plan=plan,
        first_rows=plan.rows[: transfer.PREVIEW_ROWS],
        sha256=upload.sha256,
        other_file=other_file,
    )


@router.get("/transfer", response_class=HTMLResponse)
async def transfer_page(
    request: Request, actor: ActorDep, q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    return await _start_page(request, actor, q=q)


@router.get("/transfer/export/{entity}.csv")
async def export(
    request: Request,
    actor: ActorDep,
    database: DatabaseDep,
    audit: Annotated[AuditLog, Depends(audit_log)],
    entity: EntityPath,
    q: Annotated[str, Query(max_length=200)] = "",
) -> StreamingResponse:
    query = ListQuery(search=q.strip())
    return await export_response(request, actor, database, audit, ENTITIES[entity], query)


async def _checked_upload(
    request: Request, actor: Actor, database: Database, *, check: bool = True
) -> tuple[_Upload, transfer.ImportPlan | None] | HTMLResponse:
    """The upload (and its checked rows), or the start page telling what is wrong with the file."""
    try:
        upload = await _read_upload(request, actor)
        # The header and size are read here in any case, so a bad file never reaches a write.
        plan = transfer.read_rows(upload.entity, upload.data)
        if not check:
            return upload, None
        async with database.tenant_transaction(actor.tenant_id) as conn:
            return upload, await transfer.check_rows(conn, plan)
    except TooLarge as exc:
        return await _start_page(request, actor, error=str(exc), status=413)
    except InvalidInput as exc:
        message = exc.fields.get("file") or str(exc)
        if message == "no file chosen":
            message = i18n.texts(await web.page_language(request, actor)).transfer_no_file
        return await _start_page(request, actor, error=message, status=422)


@router.post("/transfer/preview", response_class=HTMLResponse)
async def preview(request: Request, actor: ActorDep, database: DatabaseDep) -> Response:
    checked = await _checked_upload(request, actor, database)
    if isinstance(checked, HTMLResponse):
        return checked
    upload, plan = checked
    assert plan is not None
    return await _preview_page(request, actor, upload, plan)


@router.post("/transfer/import", response_class=HTMLResponse)
async def import_(request: Request, actor: ActorDep, database: DatabaseDep) -> Response:
    checked = await _checked_upload(request, actor, database, check=False)
    if isinstance(checked, HTMLResponse):
        return checked
    upload, _ = checked
    async with database.tenant_transaction(actor.tenant_id) as conn:
        plan = await transfer.check_rows(conn, transfer.read_rows(upload.entity, upload.data))
        if upload.fields.get("sha256") != upload.sha256:
            other = plan
        else:
            other = None
            result = await transfer.import_rows(conn, actor, plan)
    if other is not None:
        return await _preview_page(request, actor, upload, other, other_file=True)
    problems = {row.line: row.errors for row in plan.bad}
    return await web.render(
        request,
        actor,
        "transfer/result.html",
        nav="transfer",
        entity=plan.entity,
        result=result,
        problems=problems,
    )
