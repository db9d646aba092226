"""JSON API for tenant admins: custom fields and GDPR erasure."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ValidationError

from tresor_crm import custom_fields, erasure
from tresor_crm.audit_client import AuditLog, audit_log, client_ip
from tresor_crm.deps import AdminDep, ConnDep
from tresor_crm.records import validation_error

router = APIRouter(prefix="/s/{link}/api/v1/admin", tags=["administration"])

AuditDep = Annotated[AuditLog, Depends(audit_log)]


class CustomFieldOut(BaseModel):
    id: uuid.UUID
    entity: custom_fields.Entity
    key: str
    label: str
    kind: custom_fields.Kind
    choices: list[str]
    position: int


class ErasureOut(BaseModel):
    id: uuid.UUID
    record_type: str
    record_id: uuid.UUID
    erased_at: datetime
    erased_by: uuid.UUID | None
    reason: str


def _parse(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


@router.get("/custom-fields", response_model=list[CustomFieldOut])
async def list_custom_fields(
    actor: AdminDep, conn: ConnDep, entity: custom_fields.Entity | None = None
) -> list[CustomFieldOut]:
    rows = await custom_fields.definitions(conn, entity)
    return [CustomFieldOut.model_validate(r) for r in rows]


@router.post("/custom-fields", response_model=CustomFieldOut, status_code=201)
async def create_custom_field(
    actor: AdminDep, conn: ConnDep, body: dict[str, Any]
) -> CustomFieldOut:
    definition = _parse(custom_fields.FieldDefinition, body)
    return CustomFieldOut.model_validate(await custom_fields.define(conn, definition))


@router.delete("/custom-fields/{field_id}", status_code=204)
async def delete_custom_field(actor: AdminDep, conn: ConnDep, field_id: uuid.UUID) -> Response:
    await custom_fields.remove(conn, field_id)
    return Response(status_code=204)


@router.post(
    "/erasures/contacts/{contact_id}",
    response_model=ErasureOut,
    status_code=201,
    responses={503: {"description": "the audit log is unavailable: nothing was erased"}},
)
async def erase_contact(
    request: Request,
    actor: AdminDep,
    conn: ConnDep,
    audit: AuditDep,
    contact_id: uuid.UUID,
    body: dict[str, Any] | None = None,
) -> ErasureOut:
    wanted = _parse(erasure.ErasureRequest, body or {})
    row = await erasure.erase_contact(
        conn, actor, audit, contact_id, wanted, client_ip=client_ip(request)
    )
    return ErasureOut.model_validate(row)


@router.get("/erasures", response_model=list[ErasureOut])
async def list_erasures(actor: AdminDep, conn: ConnDep) -> list[ErasureOut]:
    return [ErasureOut.model_validate(r) for r in await erasure.list_erasures(conn)]
