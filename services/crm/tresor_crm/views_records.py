"""Pages for people: dashboard, contacts and companies (lists, details, forms), language.

Handlers translate: a form to field models, a domain call, a page or a redirect.
Every write is a POST with the session's CSRF token; a stale edit shows the
current values with a message instead of overwriting them.
"""

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from tresor_crm import history, i18n, record_service, views_activities, views_documents, web
from tresor_crm.db import Conn, Row
from tresor_crm.deps import ActorDep, ConnDep, SettingsDep
from tresor_crm.errors import Conflict, InvalidInput, NotFound
from tresor_crm.identity import Actor
from tresor_crm.records import (
    CompanyFields,
    ContactFields,
    ListQuery,
    SortField,
    decode_cursor,
    encode_cursor,
    validation_error,
)
from tresor_crm.storage import preferences
from tresor_crm.storage import records as store

router = APIRouter(prefix="/s/{link}", include_in_schema=False)

RecordType = Literal["contact", "company"]
# Control characters cannot be stored or searched for: refused with 422.
Search = Annotated[str, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
_NOTICES = {"saved", "restored"}
CONTACT_FORM_FIELDS = (
    "first_name",
    "last_name",
    "company_id",
    "position",
    "emails",
    "phones",
    "street",
    "postal_code",
    "city",
    "country",
    "tags",
    "consent",
)
COMPANY_FORM_FIELDS = (
    "name",
    "website",
    "industry",
    "phone",
    "street",
    "postal_code",
    "city",
    "country",
    "tags",
)


# -- layout pieces --------------------------------------------------------------------------


@router.get("/static/{name}")
async def static(actor: ActorDep, name: str) -> Response:
    return web.static_response(name)


@router.post("/language")
async def set_language(actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep) -> Response:
    lang = i18n.language(str(form.get("lang", "")))
    await preferences.set_language(conn, actor.user_id, lang)
    response = web.redirect(actor)
    response.headers["location"] = web.safe_next(actor, str(form.get("next", "")))
    return response


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, actor: ActorDep, conn: ConnDep) -> Response:
    rows = await preferences.recent_changes(conn)
    # One entry per save: same record, same person, same moment.
    changes: list[dict[str, Any]] = []
    for row in rows:
        key = (row["record_type"], row["record_id"], row["changed_by_name"], row["changed_at"])
        if changes and changes[-1]["key"] == key:
            changes[-1]["fields"].append(row["field"])
            continue
        changes.append({"key": key, **row, "fields": [row["field"]]})
    return await web.render(
        request,
        actor,
        "dashboard.html",
        nav="dashboard",
        changes=changes[:20],
        **await views_activities.dashboard_section(conn, actor),
    )


# -- shared helpers -------------------------------------------------------------------------


def _lines(value: object) -> list[str]:
    text = value if isinstance(value, str) else ""
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def _commas(value: object) -> list[str]:
    text = value if isinstance(value, str) else ""
    return [part.strip() for part in text.split(",") if part.strip()]


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _version(form: FormData) -> int:
    try:
        return max(1, int(_text(form, "version")))
    except ValueError:
        raise InvalidInput("version: missing", {"version": "missing"}) from None


def _field_errors(exc: InvalidInput) -> dict[str, str]:
    """`emails.1` -> `emails`: the message goes next to the form field."""
    errors: dict[str, str] = {}
    for name, message in exc.fields.items():
        errors.setdefault(name.split(".")[0], message)
    return errors or {"form": str(exc)}


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _list_query(
    settings_page_size: int,
    q: str,
    tag: str,
    sort: SortField,
    order: str,
    cursor: str | None,
    deleted: bool,
) -> ListQuery:
    return ListQuery(
        search=q.strip(),
        tag=tag.strip(),
        sort=sort,
        descending=order == "desc",
        limit=settings_page_size + 1,
        after=decode_cursor(cursor) if cursor else None,
        deleted=deleted,
    )


def _paging(
    rows: list[Row], page_size: int, params: dict[str, str]
) -> tuple[list[Row], str | None]:
    """The page's rows and the query string of the next page, if there is one."""
    if len(rows) <= page_size:
        return rows, None
    last = rows[page_size - 1]
    following = {**params, "cursor": encode_cursor(last["sort_value"], last["id"])}
    return rows[:page_size], urlencode({k: v for k, v in following.items() if v})


def _list_params(q: str, tag: str, sort: str, order: str, deleted: bool) -> dict[str, str]:
    return {"q": q, "tag": tag, "sort": sort, "order": order, "deleted": "1" if deleted else ""}


def _notice(value: str | None) -> str | None:
    return value if value in _NOTICES else None


def _undo_id(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def _changes(conn: Conn, record_type: RecordType, record_id: uuid.UUID) -> list[Row]:
    rows = await history.of_record(conn, record_type, record_id)
    changes = []
    for row in rows:
        old, new = history.as_text(row["old_value"]), history.as_text(row["new_value"])
        if old in ("", "{}") and new in ("", "{}"):
            continue  # an empty field set to empty, e.g. at creation: nothing to read
        changes.append({**row, "old_text": old, "new_text": new})
    return changes


# -- contacts -------------------------------------------------------------------------------


def _contact_values(row: Mapping[str, Any]) -> dict[str, str]:
    """A contact's fields as the form shows them."""
    return {
        "first_name": row.get("first_name") or "",
        "last_name": row.get("last_name") or "",
        "company_id": str(row["company_id"]) if row.get("company_id") else "",
        "position": row.get("position") or "",
        "emails": "\n".join(row.get("emails") or []),
        "phones": "\n".join(row.get("phones") or []),
        "street": row.get("street") or "",
        "postal_code": row.get("postal_code") or "",
        "city": row.get("city") or "",
        "country": row.get("country") or "",
        "tags": ", ".join(row.get("tags") or []),
        "consent": "on" if row.get("consent") else "",
    }


def _contact_form_values(form: FormData) -> dict[str, str]:
    return {name: _text(form, name) for name in CONTACT_FORM_FIELDS}


def _contact_fields(values: Mapping[str, str], existing: Row | None, actor: Actor) -> ContactFields:
    return _parse(
        ContactFields,
        {
            "first_name": values["first_name"],
            "last_name": values["last_name"],
            "company_id": values["company_id"] or None,
            "position": values["position"],
            "emails": _lines(values["emails"]),
            "phones": [p.strip() for p in values["phones"].splitlines() if p.strip()],
            "street": values["street"],
            "postal_code": values["postal_code"],
            "city": values["city"],
            "country": values["country"],
            "tags": _commas(values["tags"]),
            "consent": values["consent"] == "on",
            # What this form does not show stays as it is.
            "custom": existing["custom"] if existing else {},
            "owner_id": existing["owner_id"] if existing else actor.user_id,
            "consent_at": existing["consent_at"] if existing and values["consent"] else None,
        },
    )


async def _company_choices(conn: Conn, current: str | None) -> list[Row]:
    """The first companies by name, and always the one chosen now, so saving keeps it."""
    choices = await record_service.list_companies(conn, ListQuery(limit=500))
    return choices + await _missing_companies(conn, choices, [current] if current else [])


async def _missing_companies(conn: Conn, shown: list[Row], wanted: list[str]) -> list[Row]:
    known = {str(row["id"]) for row in shown}
    extra = []
    for company_id in wanted:
        if company_id in known:
            continue
        with contextlib.suppress(ValueError, NotFound):
            extra.append(await store.company(conn, uuid.UUID(company_id)))
    return extra


async def _contact_form(
    request: Request,
    actor: Actor,
    conn: Conn,
    *,
    contact: Row | None,
    values: dict[str, str],
    errors: Mapping[str, str] | None = None,
    status: int = 200,
    conflict: Mapping[str, str] | None = None,
) -> Response:
    return await web.render(
        request,
        actor,
        "records/contact_form.html",
        status=status,
        nav="contacts",
        contact=contact,
        values=values,
        errors=errors or {},
        conflict=conflict,
        companies=await _company_choices(conn, values.get("company_id")),
    )


@dataclass
class ListArgs:
    """The query string of a list page."""

    q: Search = ""
    tag: Search = ""
    sort: SortField = "name"
    order: Literal["asc", "desc"] = "asc"
    cursor: Annotated[str | None, Query(max_length=500)] = None
    deleted: bool = False
    undo: str | None = None


async def _list_page(
    request: Request,
    actor: Actor,
    conn: Conn,
    page_size: int,
    args: ListArgs,
    lister: Callable[[Conn, ListQuery], Awaitable[list[Row]]],
    nav: str,
) -> Response:
    rows = await lister(
        conn,
        _list_query(page_size, args.q, args.tag, args.sort, args.order, args.cursor, args.deleted),
    )
    params = _list_params(args.q, args.tag, args.sort, args.order, args.deleted)
    rows, next_query = _paging(rows, page_size, params)
    first_query = urlencode({k: v for k, v in params.items() if v}) if args.cursor else None
    return await web.render(
        request,
        actor,
        f"records/{nav}.html",
        nav=nav,
        rows=rows,
        params=params,
        next_query=next_query,
        first_query=first_query,
        deleted=args.deleted,
        undo=_undo_id(args.undo),
    )


@router.get("/contacts", response_class=HTMLResponse)
async def contacts(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    settings: SettingsDep,
    args: Annotated[ListArgs, Depends()],
) -> Response:
    return await _list_page(
        request, actor, conn, settings.page_size, args, record_service.list_contacts, "contacts"
    )


@router.get("/contacts/new", response_class=HTMLResponse)
async def new_contact(
    request: Request, actor: ActorDep, conn: ConnDep, company: str | None = None
) -> Response:
    values = _contact_values({})
    if company and _undo_id(company):
        values["company_id"] = company
    return await _contact_form(request, actor, conn, contact=None, values=values)


@router.post("/contacts")
async def create_contact(
    request: Request, actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep
) -> Response:
    values = _contact_form_values(form)
    try:
        fields = _contact_fields(values, None, actor)
        async with conn.transaction():
            row = await record_service.create_contact(conn, actor, fields)
    except InvalidInput as exc:
        return await _contact_form(
            request,
            actor,
            conn,
            contact=None,
            values=values,
            errors=_field_errors(exc),
            status=422,
        )
    return web.redirect(actor, f"contacts/{row['id']}?notice=saved")


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
async def contact(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    contact_id: uuid.UUID,
    notice: str | None = None,
) -> Response:
    row = await store.contact(conn, contact_id)
    return await web.render(
        request,
        actor,
        "records/contact.html",
        nav="contacts",
        contact=row,
        changes=await _changes(conn, "contact", contact_id),
        notice=_notice(notice),
        record_type="contact",
        record_id=contact_id,
        **await views_activities.record_section(conn, actor, "contact", contact_id),
        **await views_documents.record_section(conn, "contact", contact_id),
    )


@router.get("/contacts/{contact_id}/edit", response_class=HTMLResponse)
async def edit_contact(
    request: Request, actor: ActorDep, conn: ConnDep, contact_id: uuid.UUID
) -> Response:
    row = await store.contact(conn, contact_id)
    return await _contact_form(request, actor, conn, contact=row, values=_contact_values(row))


@router.post("/contacts/{contact_id}")
async def update_contact(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    form: web.CheckedFormDep,
    contact_id: uuid.UUID,
) -> Response:
    current = await store.contact(conn, contact_id)
    values = _contact_form_values(form)
    try:
        version = _version(form)
        fields = _contact_fields(values, current, actor)
        async with conn.transaction():
            await record_service.update_contact(conn, actor, contact_id, version, fields)
    except Conflict:
        latest = await store.contact(conn, contact_id)
        shown = _contact_values(latest)
        mine = {k: v for k, v in values.items() if v.strip() != shown[k].strip()}
        return await _contact_form(
            request, actor, conn, contact=latest, values=shown, status=409, conflict=mine
        )
    except InvalidInput as exc:
        return await _contact_form(
            request,
            actor,
            conn,
            contact=current,
            values=values,
            errors=_field_errors(exc),
            status=422,
        )
    return web.redirect(actor, f"contacts/{contact_id}?notice=saved")


@router.post("/contacts/{contact_id}/delete")
async def delete_contact(
    actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep, contact_id: uuid.UUID
) -> Response:
    await record_service.set_contact_deleted(conn, actor, contact_id, True)
    return web.redirect(actor, f"contacts?undo={contact_id}")


@router.post("/contacts/{contact_id}/restore")
async def restore_contact(
    actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep, contact_id: uuid.UUID
) -> Response:
    await record_service.set_contact_deleted(conn, actor, contact_id, False)
    return web.redirect(actor, f"contacts/{contact_id}?notice=restored")


# -- companies ------------------------------------------------------------------------------


def _company_values(row: Mapping[str, Any]) -> dict[str, str]:
    values = {name: str(row.get(name) or "") for name in COMPANY_FORM_FIELDS}
    values["tags"] = ", ".join(row.get("tags") or [])
    return values


def _company_fields(values: Mapping[str, str], existing: Row | None) -> CompanyFields:
    data: dict[str, Any] = {name: values[name] for name in COMPANY_FORM_FIELDS}
    data["tags"] = _commas(values["tags"])
    data["custom"] = existing["custom"] if existing else {}
    return _parse(CompanyFields, data)


async def _company_form(
    request: Request,
    actor: Actor,
    *,
    company: Row | None,
    values: dict[str, str],
    errors: Mapping[str, str] | None = None,
    status: int = 200,
    conflict: Mapping[str, str] | None = None,
) -> Response:
    return await web.render(
        request,
        actor,
        "records/company_form.html",
        status=status,
        nav="companies",
        company=company,
        values=values,
        errors=errors or {},
        conflict=conflict,
    )


@router.get("/companies", response_class=HTMLResponse)
async def companies(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    settings: SettingsDep,
    args: Annotated[ListArgs, Depends()],
) -> Response:
    return await _list_page(
        request, actor, conn, settings.page_size, args, record_service.list_companies, "companies"
    )


@router.get("/companies/new", response_class=HTMLResponse)
async def new_company(request: Request, actor: ActorDep) -> Response:
    return await _company_form(request, actor, company=None, values=_company_values({}))


@router.post("/companies")
async def create_company(
    request: Request, actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep
) -> Response:
    values = {name: _text(form, name) for name in COMPANY_FORM_FIELDS}
    try:
        fields = _company_fields(values, None)
        async with conn.transaction():
            row = await record_service.create_company(conn, actor, fields)
    except InvalidInput as exc:
        return await _company_form(
            request, actor, company=None, values=values, errors=_field_errors(exc), status=422
        )
    return web.redirect(actor, f"companies/{row['id']}?notice=saved")


@router.get("/companies/{company_id}", response_class=HTMLResponse)
async def company(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    company_id: uuid.UUID,
    notice: str | None = None,
) -> Response:
    row = await store.company(conn, company_id)
    people = await record_service.list_contacts(conn, ListQuery(company_id=company_id, limit=200))
    return await web.render(
        request,
        actor,
        "records/company.html",
        nav="companies",
        company=row,
        people=people,
        changes=await _changes(conn, "company", company_id),
        notice=_notice(notice),
        record_type="company",
        record_id=company_id,
        **await views_activities.record_section(conn, actor, "company", company_id),
        **await views_documents.record_section(conn, "company", company_id),
    )


@router.get("/companies/{company_id}/edit", response_class=HTMLResponse)
async def edit_company(
    request: Request, actor: ActorDep, conn: ConnDep, company_id: uuid.UUID
) -> Response:
    row = await store.company(conn, company_id)
    return await _company_form(request, actor, company=row, values=_company_values(row))


@router.post("/companies/{company_id}")
async def update_company(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    form: web.CheckedFormDep,
    company_id: uuid.UUID,
) -> Response:
    current = await store.company(conn, company_id)
    values = {name: _text(form, name) for name in COMPANY_FORM_FIELDS}
    try:
        version = _version(form)
        fields = _company_fields(values, current)
        async with conn.transaction():
            await record_service.update_company(conn, actor, company_id, version, fields)
    except Conflict:
        latest = await store.company(conn, company_id)
        shown = _company_values(latest)
        mine = {k: v for k, v in values.items() if v.strip() != shown[k].strip()}
        return await _company_form(
            request, actor, company=latest, values=shown, status=409, conflict=mine
        )
    except InvalidInput as exc:
        return await _company_form(
            request,
            actor,
            company=current,
            values=values,
            errors=_field_errors(exc),
            status=422,
        )
    return web.redirect(actor, f"companies/{company_id}?notice=saved")


@router.post("/companies/{company_id}/delete")
async def delete_company(
    actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep, company_id: uuid.UUID
) -> Response:
    await record_service.set_company_deleted(conn, actor, company_id, True)
    return web.redirect(actor, f"companies?undo={company_id}")


@router.post("/companies/{company_id}/restore")
async def restore_company(
    actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep, company_id: uuid.UUID
) -> Response:
    await record_service.set_company_deleted(conn, actor, company_id, False)
    return web.redirect(actor, f"companies/{company_id}?notice=restored")
