"""JSON API for companies, contacts and search: `/s/<link>/api/v1/...`.

Handlers translate: request to domain call, result to response. Stale edits
get 409, bad input 422, everything as application/problem+json.
"""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tresor_crm import history, record_service
from tresor_crm.db import Row
from tresor_crm.deps import ActorDep, ConnDep
from tresor_crm.records import (
    CompanyFields,
    ContactFields,
    ListQuery,
    SortField,
    decode_cursor,
    encode_cursor,
    validation_error,
)
from tresor_crm.storage import records as store

router = APIRouter(prefix="/s/{link}/api/v1", tags=["records"])

Limit = Annotated[int, Query(ge=1, le=200)]
# Control characters cannot be stored or searched for: refused with 422.
Search = Annotated[str, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class CompanyOut(CompanyFields):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool


class ContactOut(ContactFields):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    company_name: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool


class CompanyPage(BaseModel):
    items: list[CompanyOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class Versioned(BaseModel):
    version: int = Field(ge=1, description="the version the edit started from")


class CompanyUpdate(CompanyFields, Versioned):
    pass


class ContactUpdate(ContactFields, Versioned):
    pass


class Change(BaseModel):
    changed_at: datetime
    changed_by: uuid.UUID | None
    changed_by_name: str
    field: str
    old_value: Any
    new_value: Any


class SearchResult(BaseModel):
    contacts: list[ContactOut]
    companies: list[CompanyOut]


def _company(row: Row) -> CompanyOut:
    return CompanyOut.model_validate({**row, "deleted": row["deleted_at"] is not None})


def _contact(row: Row) -> ContactOut:
    return ContactOut.model_validate({**row, "deleted": row["deleted_at"] is not None})


def _query(
    search: str,
    tag: str,
    sort: SortField,
    order: str,
    limit: int,
    cursor: str | None,
    deleted: bool,
    company_id: uuid.UUID | None = None,
) -> ListQuery:
    return ListQuery(
        search=search.strip(),
        tag=tag.strip(),
        company_id=company_id,
        sort=sort,
        descending=order == "desc",
        # One more than asked tells whether there is a next page.
        limit=limit + 1,
        after=decode_cursor(cursor) if cursor else None,
        deleted=deleted,
    )


def _next_cursor(rows: list[Row], limit: int) -> str | None:
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return encode_cursor(last["sort_value"], last["id"])


def _parse(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


# -- companies ------------------------------------------------------------------------------


@router.get("/companies", response_model=CompanyPage)
async def list_companies(
    conn: ConnDep,
    q: Search = "",
    tag: Search = "",
    sort: SortField = "name",
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = 25,
    cursor: str | None = None,
    deleted: bool = False,
) -> CompanyPage:
    rows = await record_service.list_companies(
        conn, _query(q, tag, sort, order, limit, cursor, deleted)
    )
    return CompanyPage(
        items=[_company(r) for r in rows[:limit]], next_cursor=_next_cursor(rows, limit)
    )


@router.post("/companies", response_model=CompanyOut, status_code=201)
async def create_company(actor: ActorDep, conn: ConnDep, body: dict[str, Any]) -> CompanyOut:
    fields = _parse(CompanyFields, body)
    return _company(await record_service.create_company(conn, actor, fields))


@router.get("/companies/{company_id}", response_model=CompanyOut)
async def get_company(conn: ConnDep, company_id: uuid.UUID) -> CompanyOut:
    return _company(await store.company(conn, company_id))


@router.put("/companies/{company_id}", response_model=CompanyOut)
async def update_company(
    actor: ActorDep, conn: ConnDep, company_id: uuid.UUID, body: dict[str, Any]
) -> CompanyOut:
    update = _parse(CompanyUpdate, body)
    fields = CompanyFields.model_validate(update.model_dump(exclude={"version"}))
    row = await record_service.update_company(conn, actor, company_id, update.version, fields)
    return _company(row)


@router.delete("/companies/{company_id}", status_code=204)
async def delete_company(actor: ActorDep, conn: ConnDep, company_id: uuid.UUID) -> Response:
    await record_service.set_company_deleted(conn, actor, company_id, True)
    return Response(status_code=204)


@router.post("/companies/{company_id}/restore", response_model=CompanyOut)
async def restore_company(actor: ActorDep, conn: ConnDep, company_id: uuid.UUID) -> CompanyOut:
    await record_service.set_company_deleted(conn, actor, company_id, False)
    return _company(await store.company(conn, company_id))


@router.get("/companies/{company_id}/history", response_model=list[Change])
async def company_history(conn: ConnDep, company_id: uuid.UUID) -> list[Change]:
    await store.company(conn, company_id, include_deleted=True)
    return [
        Change.model_validate(row) for row in await history.of_record(conn, "company", company_id)
    ]


# -- contacts -------------------------------------------------------------------------------


@router.get("/contacts", response_model=ContactPage)
async def list_contacts(
    conn: ConnDep,
    q: Search = "",
    tag: Search = "",
    company_id: uuid.UUID | None = None,
    sort: SortField = "name",
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = 25,
    cursor: str | None = None,
    deleted: bool = False,
) -> ContactPage:
    rows = await record_service.list_contacts(
        conn, _query(q, tag, sort, order, limit, cursor, deleted, company_id)
    )
    return ContactPage(
        items=[_contact(r) for r in rows[:limit]], next_cursor=_next_cursor(rows, limit)
    )


@router.post("/contacts", response_model=ContactOut, status_code=201)
async def create_contact(actor: ActorDep, conn: ConnDep, body: dict[str, Any]) -> ContactOut:
    fields = _parse(ContactFields, body)
    return _contact(await record_service.create_contact(conn, actor, fields))


@router.get("/contacts/{contact_id}", response_model=ContactOut)
async def get_contact(conn: ConnDep, contact_id: uuid.UUID) -> ContactOut:
    return _contact(await store.contact(conn, contact_id))


@router.put("/contacts/{contact_id}", response_model=ContactOut)
async def update_contact(
    actor: ActorDep, conn: ConnDep, contact_id: uuid.UUID, body: dict[str, Any]
) -> ContactOut:
    update = _parse(ContactUpdate, body)
    fields = ContactFields.model_validate(update.model_dump(exclude={"version"}))
    row = await record_service.update_contact(conn, actor, contact_id, update.version, fields)
    return _contact(row)


@router.delete("/contacts/{contact_id}", status_code=204)
async def delete_contact(actor: ActorDep, conn: ConnDep, contact_id: uuid.UUID) -> Response:
    await record_service.set_contact_deleted(conn, actor, contact_id, True)
    return Response(status_code=204)


@router.post("/contacts/{contact_id}/restore", response_model=ContactOut)
async def restore_contact(actor: ActorDep, conn: ConnDep, contact_id: uuid.UUID) -> ContactOut:
    await record_service.set_contact_deleted(conn, actor, contact_id, False)
    return _contact(await store.contact(conn, contact_id))


@router.get("/contacts/{contact_id}/history", response_model=list[Change])
async def contact_history(conn: ConnDep, contact_id: uuid.UUID) -> list[Change]:
    await store.contact(conn, contact_id, include_deleted=True)
    return [
        Change.model_validate(row) for row in await history.of_record(conn, "contact", contact_id)
    ]


@router.get("/search", response_model=SearchResult)
async def search(
    conn: ConnDep,
    q: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")],
) -> SearchResult:
    contacts = await record_service.list_contacts(conn, ListQuery(search=q.strip(), limit=20))
    companies = await record_service.list_companies(conn, ListQuery(search=q.strip(), limit=20))
    return SearchResult(
        contacts=[_contact(r) for r in contacts], companies=[_company(r) for r in companies]
    )
