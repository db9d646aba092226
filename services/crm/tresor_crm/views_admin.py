"""Admin pages: custom fields, GDPR erasure of a contact, the erasure records.

Only a tenant admin reaches them (`AdminDep`; anyone else gets the 403 page). The
erasure takes two steps: pick the contact (search), then a confirm page that says it
cannot be undone and asks for the reason; the done page shows the erasure record.
Handlers translate forms to the domain calls in `custom_fields` and `erasure`.
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from tresor_crm import custom_fields, erasure, i18n, web
from tresor_crm.audit_client import AuditLog, audit_log, client_ip
from tresor_crm.db import Conn
from tresor_crm.deps import AdminDep, ConnDep
from tresor_crm.errors import Conflict, InvalidInput, NotFound
from tresor_crm.identity import Actor
from tresor_crm.records import ListQuery, validation_error
from tresor_crm.storage import records as records_store

router = APIRouter(prefix="/s/{link}", include_in_schema=False)

SEARCH_RESULTS = 25
_NOTICES = {"field_added", "field_deleted"}

i18n.add_texts(
    "de",
    {
        "admin_fields": "Eigene Felder",
        "admin_fields_text": (
            "Zusätzliche Felder für Kontakte und Firmen; ihre Werte sind durchsuchbar. Wird ein "
            "Feld gelöscht, bleiben gespeicherte Werte bis zur nächsten Bearbeitung erhalten."
        ),
        "admin_fields_none": "Noch keine eigenen Felder.",
        "admin_field_add": "Feld hinzufügen",
        "admin_entity": "Für",
        "admin_entity_contact": "Kontakte",
        "admin_entity_company": "Firmen",
        "admin_key": "Schlüssel",
        "admin_key_hint": (
            "Kleinbuchstaben, Ziffern, _ (z. B. kundennummer); Spalte custom.<Schlüssel> im CSV"
        ),
        "admin_label": "Bezeichnung",
        "admin_kind": "Typ",
        "admin_kind_text": "Text",
        "admin_kind_number": "Zahl",
        "admin_kind_date": "Datum",
        "admin_kind_choice": "Auswahl",
        "admin_choices": "Auswahlwerte",
        "admin_choices_hint": "nur für Auswahl: ein Wert pro Zeile",
        "admin_field_added": "Das Feld wurde angelegt.",
        "admin_field_deleted": "Das Feld wurde gelöscht.",
        "admin_erasure": "Löschung nach DSGVO Art. 17",
        "admin_erasure_text": (
            "Löscht einen Kontakt endgültig mit allem, was an ihm hängt (Notizen, Aufgaben, "
            "Dokumente, Änderungen). Zurück bleibt nur ein Löschprotokoll ohne personenbezogene "
            "Daten."
        ),
        "admin_find_contact": "Kontakt suchen",
        "admin_erase_choose": "Auswählen",
        "admin_erase_title": "Kontakt endgültig löschen",
        "admin_erase_warning": (
            "Diese Löschung kann nicht rückgängig gemacht werden. Der Kontakt und alle seine "
            "Notizen, Aufgaben, Dokumente und Änderungen werden unwiderruflich entfernt."
        ),
        "admin_reason": "Grund",
        "admin_reason_hint": (
            "Ohne personenbezogene Daten, z. B. „Antrag nach Art. 17 vom 01.03.2025, Ticket 4711“"
        ),
        "admin_erase_button": "Endgültig löschen",
        "admin_erased": "Der Kontakt wurde gelöscht.",
        "admin_erasures": "Löschprotokoll",
        "admin_erasures_none": "Noch keine Löschungen.",
        "admin_erasure_id": "Protokoll-Nr.",
        "admin_erased_at": "Gelöscht am",
        "admin_erased_by": "Durch",
        "admin_record": "Eintrag",
        "admin_you": "Sie",
        "admin_back": "Zur Administration",
    },
)
i18n.add_texts(
    "en",
    {
        "admin_fields": "Custom fields",
        "admin_fields_text": (
            "Additional fields on contacts and companies; their values are searchable. When a "
            "field is deleted, stored values stay until the record is next edited."
        ),
        "admin_fields_none": "No custom fields yet.",
        "admin_field_add": "Add a field",
        "admin_entity": "For",
        "admin_entity_contact": "Contacts",
        "admin_entity_company": "Companies",
        "admin_key": "Key",
        "admin_key_hint": (
            "lower-case letters, digits, _ (e.g. customer_no); CSV column custom.<key>"
        ),
        "admin_label": "Label",
        "admin_kind": "Kind",
        "admin_kind_text": "Text",
        "admin_kind_number": "Number",
        "admin_kind_date": "Date",
        "admin_kind_choice": "Choice",
        "admin_choices": "Choices",
        "admin_choices_hint": "only for a choice: one value per line",
        "admin_field_added": "The field was added.",
        "admin_field_deleted": "The field was deleted.",
        "admin_erasure": "Erasure under GDPR Art. 17",
        "admin_erasure_text": (
            "Erases a contact for good with everything attached to it (notes, tasks, "
            "documents, changes). Only an erasure record without personal data remains."
        ),
        "admin_find_contact": "Find a contact",
        "admin_erase_choose": "Choose",
        "admin_erase_title": "Erase a contact for good",
        "admin_erase_warning": (
            "This erasure cannot be undone. The contact and all its notes, tasks, documents "
            "and changes are removed irrevocably."
        ),
        "admin_reason": "Reason",
        "admin_reason_hint": (
            "Without personal data, e.g. “Art. 17 request of 2025-03-01, ticket 4711”"
        ),
        "admin_erase_button": "Erase for good",
        "admin_erased": "The contact was erased.",
        "admin_erasures": "Erasure records",
        "admin_erasures_none": "No erasures yet.",
        "admin_erasure_id": "Record no.",
        "admin_erased_at": "Erased at",
        "admin_erased_by": "By",
        "admin_record": "Entry",
        "admin_you": "you",
        "admin_back": "To the administration",
    },
)

AuditDep = Annotated[AuditLog, Depends(audit_log)]


async def _admin_page(
    request: Request,
    actor: Actor,
    conn: Conn,
    *,
    q: str = "",
    notice: str | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    found = (
        await records_store.list_contacts(conn, ListQuery(search=q, limit=SEARCH_RESULTS))
        if q
        else []
    )
    return await web.render(
        request,
        actor,
        "admin/index.html",
        status=status,
        nav="admin",
        fields=await custom_fields.definitions(conn),
        erasures=await erasure.list_erasures(conn),
        q=q,
        found=found,
        notice=notice if notice in _NOTICES else None,
        values={"entity": "contact", "kind": "text", **(values or {})},
        errors=errors or {},
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin(
    request: Request,
    actor: AdminDep,
    conn: ConnDep,
    q: Annotated[str, Query(max_length=200)] = "",
    notice: str | None = None,
) -> Response:
    return await _admin_page(request, actor, conn, q=q.strip(), notice=notice)


def _field_values(form: Any) -> dict[str, str]:
    return {
        name: str(form.get(name, "")).strip()
        for name in ("entity", "key", "label", "kind", "choices")
    }


@router.post("/admin/custom-fields")
async def add_field(
    request: Request, actor: AdminDep, conn: ConnDep, form: web.CheckedFormDep
) -> Response:
    values = _field_values(form)
    body = {
        **{k: v for k, v in values.items() if k != "choices"},
        "choices": [line.strip() for line in values["choices"].splitlines() if line.strip()],
    }
    try:
        try:
            definition = custom_fields.FieldDefinition.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        await custom_fields.define(conn, definition)
    except InvalidInput as exc:
        errors = exc.fields or {"key": str(exc)}
        return await _admin_page(request, actor, conn, values=values, errors=errors, status=422)
    except Conflict as exc:
        return await _admin_page(
            request, actor, conn, values=values, errors={"key": str(exc)}, status=409
        )
    return web.redirect(actor, "admin?notice=field_added")


@router.post("/admin/custom-fields/{field_id}/delete")
async def delete_field(
    actor: AdminDep, conn: ConnDep, form: web.CheckedFormDep, field_id: uuid.UUID
) -> Response:
    await custom_fields.remove(conn, field_id)
    return web.redirect(actor, "admin?notice=field_deleted")


async def _erase_page(
    request: Request,
    actor: Actor,
    conn: Conn,
    contact_id: uuid.UUID,
    *,
    reason: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    contact = await records_store.contact(conn, contact_id, include_deleted=True)
    return await web.render(
        request,
        actor,
        "admin/erase.html",
        status=status,
        nav="admin",
        contact=contact,
        values={"reason": reason},
        errors=errors or {},
    )


@router.get("/admin/erase/{contact_id}", response_class=HTMLResponse)
async def erase_confirm(
    request: Request, actor: AdminDep, conn: ConnDep, contact_id: uuid.UUID
) -> Response:
    return await _erase_page(request, actor, conn, contact_id)


@router.post("/admin/erase/{contact_id}")
async def erase(
    request: Request,
    actor: AdminDep,
    conn: ConnDep,
    audit: AuditDep,
    form: web.CheckedFormDep,
    contact_id: uuid.UUID,
) -> Response:
    reason = str(form.get("reason", "")).strip()
    try:
        if not reason:
            raise InvalidInput("reason: required", {"reason": "required"})
        try:
            wanted = erasure.ErasureRequest.model_validate({"reason": reason})
        except ValidationError as exc:
            raise validation_error(exc) from None
    except InvalidInput as exc:
        return await _erase_page(
            request, actor, conn, contact_id, reason=reason, errors=exc.fields, status=422
        )
    row = await erasure.erase_contact(
        conn, actor, audit, contact_id, wanted, client_ip=client_ip(request)
    )
    return web.redirect(actor, f"admin/erasures/{row['id']}?done=1")


@router.get("/admin/erasures/{erasure_id}", response_class=HTMLResponse)
async def erasure_record(
    request: Request, actor: AdminDep, conn: ConnDep, erasure_id: uuid.UUID, done: bool = False
) -> Response:
    record = next((r for r in await erasure.list_erasures(conn) if r["id"] == erasure_id), None)
    if record is None:
        raise NotFound("no such erasure record")
    return await web.render(
        request, actor, "admin/erased.html", nav="admin", record=record, done=done
    )
