"""Pages for deals: the pipeline board, the list with totals, detail, forms, stages.

Handlers translate: a form to field models, a domain call, a page or a redirect.
Moving a deal works without JavaScript (each card has a stage menu); the board's
small script only adds drag and drop, posting the same form.
"""

import contextlib
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from tresor_crm import history, i18n, pipeline, record_service, views_activities, web
from tresor_crm.db import Conn, Row
from tresor_crm.deps import ActorDep, AdminDep, ConnDep
from tresor_crm.errors import Conflict, InvalidInput, NotFound
from tresor_crm.identity import Actor
from tresor_crm.pipeline import DealQuery, Outcome, StageFields
from tresor_crm.records import ListQuery, decode_cursor, encode_cursor
from tresor_crm.storage import pipeline as store
from tresor_crm.storage import records as record_store

router = APIRouter(prefix="/s/{link}", include_in_schema=False)

# Self-hosted, same origin: the board's drag-and-drop script and its stylesheet.
ASSETS = Path(__file__).parent / "templates" / "pipeline" / "assets"
_NOTICES = {"saved", "moved", "stale", "deleted", "restored", "stage_saved", "stage_busy"}
BOARD_LIMIT = 100
LIST_LIMIT = 50

i18n.add_texts(
    "de",
    {
        "pipeline": "Pipeline",
        "board": "Board",
        "deal_list": "Liste",
        "new_deal": "Neuer Deal",
        "edit_deal": "Deal bearbeiten",
        "deal": "Deal",
        "title": "Titel",
        "company_id": "Firma",
        "contact_ids": "Kontakte",
        "value": "Wert (EUR)",
        "value_hint": "z. B. 1.234,56",
        "stage_id": "Phase",
        "stage": "Phase",
        "stages": "Phasen",
        "expected_close": "Erwarteter Abschluss",
        "outcome": "Ergebnis",
        "outcome_open": "offen",
        "outcome_won": "gewonnen",
        "outcome_lost": "verloren",
        "outcome_reason": "Begründung",
        "outcome_all": "alle",
        "owner_me": "ich",
        "owner_other": "jemand anderes",
        "none": "—",
        "move": "Verschieben",
        "move_to": "Verschieben nach",
        "total": "Summe",
        "count": "Anzahl",
        "totals_per_stage": "Summen je Phase",
        "no_deals": "Keine Deals.",
        "deal_moved": "Der Deal wurde verschoben.",
        "deal_stale": (
            "Jemand anderes hat diesen Deal inzwischen geändert. Bitte sehen Sie ihn sich an "
            "und versuchen Sie es erneut."
        ),
        "deal_saved": "Der Deal wurde gespeichert.",
        "deal_deleted": "Der Deal wurde gelöscht.",
        "deal_restored": "Der Deal wurde wiederhergestellt.",
        "manage_stages": "Phasen verwalten",
        "stage_name": "Name der Phase",
        "add_stage": "Phase hinzufügen",
        "rename": "Umbenennen",
        "up": "Nach oben",
        "down": "Nach unten",
        "stage_saved": "Die Phasen wurden gespeichert.",
        "stage_busy": "Diese Phase enthält noch Deals; verschieben Sie diese zuerst.",
        "stages_admin_only": "Nur Administratoren können Phasen ändern.",
        "filter": "Filtern",
    },
)
i18n.add_texts(
    "en",
    {
        "pipeline": "Pipeline",
        "board": "Board",
        "deal_list": "List",
        "new_deal": "New deal",
        "edit_deal": "Edit deal",
        "deal": "Deal",
        "title": "Title",
        "company_id": "Company",
        "contact_ids": "Contacts",
        "value": "Value (EUR)",
        "value_hint": "e.g. 1,234.56",
        "stage_id": "Stage",
        "stage": "Stage",
        "stages": "Stages",
        "expected_close": "Expected close",
        "outcome": "Outcome",
        "outcome_open": "open",
        "outcome_won": "won",
        "outcome_lost": "lost",
        "outcome_reason": "Reason",
        "outcome_all": "all",
        "owner_me": "me",
        "owner_other": "someone else",
        "none": "—",
        "move": "Move",
        "move_to": "Move to",
        "total": "Total",
        "count": "Count",
        "totals_per_stage": "Totals per stage",
        "no_deals": "No deals.",
        "deal_moved": "The deal was moved.",
        "deal_stale": "Someone else changed this deal meanwhile. Please look at it and try again.",
        "deal_saved": "The deal was saved.",
        "deal_deleted": "The deal was deleted.",
        "deal_restored": "The deal was restored.",
        "manage_stages": "Manage stages",
        "stage_name": "Stage name",
        "add_stage": "Add stage",
        "rename": "Rename",
        "up": "Up",
        "down": "Down",
        "stage_saved": "The stages were saved.",
        "stage_busy": "This stage still has deals; move them first.",
        "stages_admin_only": "Only admins can change stages.",
        "filter": "Filter",
    },
)

DEAL_FORM_FIELDS = (
    "title",
    "company_id",
    "contact_ids",
    "value",
    "stage_id",
    "expected_close",
    "owner_id",
    "outcome",
    "outcome_reason",
)


def _notice(value: str | None) -> str | None:
    return value if value in _NOTICES else None


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: _text(form, name) for name in DEAL_FORM_FIELDS}
    values["contact_ids"] = [v for v in form.getlist("contact_ids") if isinstance(v, str)]
    return values


def _row_values(row: Row) -> dict[str, Any]:
    return {
        "title": row["title"],
        "company_id": str(row["company_id"] or ""),
        "contact_ids": [str(c) for c in row["contact_ids"]],
        "value": pipeline.format_money_input(row["value_cents"]),
        "stage_id": str(row["stage_id"]),
        "expected_close": row["expected_close"].isoformat() if row["expected_close"] else "",
        "owner_id": str(row["owner_id"] or ""),
        "outcome": row["outcome"],
        "outcome_reason": row["outcome_reason"],
    }


def _version(form: FormData) -> int:
    try:
        return max(1, int(_text(form, "version")))
    except ValueError:
        raise InvalidInput("version: missing", {"version": "missing"}) from None


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"{field}: not an id", {field: "not an id"}) from None


async def _choices(conn: Conn, values: dict[str, Any]) -> dict[str, Any]:
    """The first companies and contacts by name, and always those chosen now, so that
    saving the form never drops a link that was not among the first."""
    companies = await record_service.list_companies(conn, ListQuery(limit=500))
    contacts = await record_service.list_contacts(conn, ListQuery(limit=500))
    known_companies = {str(row["id"]) for row in companies}
    known_contacts = {str(row["id"]) for row in contacts}
    company_id = str(values.get("company_id") or "")
    if company_id and company_id not in known_companies:
        with contextlib.suppress(ValueError, NotFound):
            companies.append(await record_store.company(conn, uuid.UUID(company_id)))
    for contact_id in values.get("contact_ids") or []:
        if str(contact_id) not in known_contacts:
            with contextlib.suppress(ValueError, NotFound):
                contacts.append(await record_store.contact(conn, uuid.UUID(str(contact_id))))
    return {"companies": companies, "contacts": contacts, "stages": await pipeline.stages(conn)}


async def _form_page(
    request: Request,
    actor: Actor,
    conn: Conn,
    *,
    deal: Row | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
    conflict: bool = False,
) -> Response:
    return await web.render(
        request,
        actor,
        "pipeline/deal_form.html",
        status=status,
        nav="deals",
        deal=deal,
        values=values,
        errors=errors or {},
        conflict=conflict,
        outcomes=pipeline.OUTCOMES,
        **await _choices(conn, values),
    )


# -- assets ---------------------------------------------------------------------------------


@router.get("/deals/assets/{name}")
async def asset(actor: ActorDep, name: Literal["board.js", "pipeline.css"]) -> Response:
    media_type = "text/javascript" if name.endswith(".js") else "text/css"
    return Response(
        (ASSETS / name).read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


# -- board and list -------------------------------------------------------------------------

OutcomeFilter = Literal["open", "won", "lost", "all"]


@router.get("/deals", response_class=HTMLResponse)
async def board(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    outcome: OutcomeFilter = "open",
    notice: str | None = None,
) -> Response:
    chosen: Outcome | None = None if outcome == "all" else outcome
    query = DealQuery(outcome=chosen, limit=BOARD_LIMIT)
    columns = await pipeline.board(conn, query)
    totals = {t.stage_id: t for t in await pipeline.totals(conn, query)}
    return await web.render(
        request,
        actor,
        "pipeline/board.html",
        nav="deals",
        columns=columns,
        totals=totals,
        stages=[stage for stage, _ in columns],
        outcome=outcome,
        notice=_notice(notice),
        here_query=urlencode({"outcome": outcome}),
    )


@router.get("/deals/list", response_class=HTMLResponse)
async def deal_list(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    q: Annotated[str, Query(max_length=200)] = "",
    stage_id: uuid.UUID | None = None,
    outcome: OutcomeFilter = "all",
    cursor: str | None = None,
    notice: str | None = None,
) -> Response:
    chosen: Outcome | None = None if outcome == "all" else outcome
    query = DealQuery(
        search=q.strip(),
        stage_id=stage_id,
        outcome=chosen,
        sort="updated_at",
        descending=True,
        limit=LIST_LIMIT + 1,
        after=decode_cursor(cursor) if cursor else None,
    )
    rows = await pipeline.list_deals(conn, query)
    totals = await pipeline.totals(
        conn, DealQuery(search=q.strip(), stage_id=stage_id, outcome=chosen)
    )
    filters = {"q": q, "stage_id": str(stage_id or ""), "outcome": outcome}
    next_query = None
    if len(rows) > LIST_LIMIT:
        last = rows[LIST_LIMIT - 1]
        next_query = urlencode({**filters, "cursor": encode_cursor(last["sort_value"], last["id"])})
    return await web.render(
        request,
        actor,
        "pipeline/list.html",
        nav="deals",
        deals=rows[:LIST_LIMIT],
        totals=totals,
        total_count=sum(t.count for t in totals),
        total_cents=sum(t.value_cents for t in totals),
        stages=await pipeline.stages(conn),
        filters=filters,
        outcomes=pipeline.OUTCOMES,
        next_query=next_query,
        first_query=urlencode(filters) if cursor else None,
        notice=_notice(notice),
    )


# -- stages (admins) ------------------------------------------------------------------------


@router.get("/deals/stages", response_class=HTMLResponse)
async def stages_page(
    request: Request, actor: ActorDep, conn: ConnDep, notice: str | None = None
) -> Response:
    return await web.render(
        request,
        actor,
        "pipeline/stages.html",
        nav="deals",
        stages=await pipeline.stages(conn),
        errors={},
        values={},
        notice=_notice(notice),
    )


async def _stage_form_error(
    request: Request, actor: Actor, conn: Conn, exc: InvalidInput, name: str
) -> Response:
    return await web.render(
        request,
        actor,
        "pipeline/stages.html",
        status=422,
        nav="deals",
        stages=await pipeline.stages(conn),
        errors=exc.fields or {"name": str(exc)},
        values={"name": name},
        notice=None,
    )


def _stage_fields(form: FormData) -> StageFields:
    from pydantic import ValidationError

    from tresor_crm.records import validation_error

    try:
        return StageFields.model_validate({"name": _text(form, "name")})
    except ValidationError as exc:
        raise validation_error(exc) from None


@router.post("/deals/stages")
async def create_stage(
    request: Request, actor: AdminDep, conn: ConnDep, form: web.CheckedFormDep
) -> Response:
    try:
        await pipeline.create_stage(conn, actor, _stage_fields(form))
    except InvalidInput as exc:
        return await _stage_form_error(request, actor, conn, exc, _text(form, "name"))
    return web.redirect(actor, "deals/stages?notice=stage_saved")


@router.post("/deals/stages/{stage_id}")
async def change_stage(
    request: Request,
    actor: AdminDep,
    conn: ConnDep,
    stage_id: uuid.UUID,
    form: web.CheckedFormDep,
) -> Response:
    """One form per stage; its button says what to do: rename, up, down or delete."""
    action = _text(form, "action")
    try:
        if action == "rename":
            await pipeline.rename_stage(conn, actor, stage_id, _stage_fields(form))
        elif action in ("up", "down"):
            await pipeline.move_stage(conn, actor, stage_id, -1 if action == "up" else 1)
        elif action == "delete":
            await pipeline.delete_stage(conn, actor, stage_id)
        else:
            raise InvalidInput("action: unknown", {"action": "unknown"})
    except InvalidInput as exc:
        return await _stage_form_error(request, actor, conn, exc, _text(form, "name"))
    except Conflict:
        return web.redirect(actor, "deals/stages?notice=stage_busy")
    return web.redirect(actor, "deals/stages?notice=stage_saved")


# -- create ---------------------------------------------------------------------------------


@router.get("/deals/new", response_class=HTMLResponse)
async def new_deal(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    company_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    stage_id: uuid.UUID | None = None,
) -> Response:
    values: dict[str, Any] = dict.fromkeys(DEAL_FORM_FIELDS, "")
    values.update(
        company_id=str(company_id or ""),
        contact_ids=[str(contact_id)] if contact_id else [],
        stage_id=str(stage_id or ""),
        owner_id=str(actor.user_id),
        outcome="open",
    )
    return await _form_page(request, actor, conn, deal=None, values=values)


@router.post("/deals")
async def create_deal(
    request: Request, actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep
) -> Response:
    values = _form_values(form)
    try:
        row = await pipeline.create_deal(conn, actor, pipeline.parse_deal_form(values))
    except InvalidInput as exc:
        return await _form_page(
            request, actor, conn, deal=None, values=values, errors=_errors(exc), status=422
        )
    return web.redirect(actor, f"deals/{row['id']}?notice=saved")


def _errors(exc: InvalidInput) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, message in exc.fields.items():
        errors.setdefault(name.split(".")[0], message)
    return errors or {"form": str(exc)}


# -- one deal -------------------------------------------------------------------------------


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
async def deal(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    deal_id: uuid.UUID,
    notice: str | None = None,
) -> Response:
    row = await pipeline.deal(conn, deal_id, include_deleted=True)
    changes = await history.of_record(conn, "deal", deal_id)
    stage_names = {str(s["id"]): s["name"] for s in await pipeline.stages(conn)}
    return await web.render(
        request,
        actor,
        "pipeline/deal.html",
        nav="deals",
        deal=row,
        contacts=await store.contacts_named(conn, list(row["contact_ids"])),
        stages=await pipeline.stages(conn),
        changes=changes,
        stage_names=stage_names,
        notice=_notice(notice),
        record_type="deal",
        record_id=deal_id,
        **await views_activities.record_section(conn, actor, "deal", deal_id),
    )


@router.get("/deals/{deal_id}/edit", response_class=HTMLResponse)
async def edit_deal(
    request: Request, actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID
) -> Response:
    row = await pipeline.deal(conn, deal_id)
    return await _form_page(request, actor, conn, deal=row, values=_row_values(row))


@router.post("/deals/{deal_id}/edit")
async def update_deal(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    deal_id: uuid.UUID,
    form: web.CheckedFormDep,
) -> Response:
    values = _form_values(form)
    version = _version(form)
    try:
        fields = pipeline.parse_deal_form(values)
        await pipeline.update_deal(conn, actor, deal_id, version, fields)
    except InvalidInput as exc:
        row = await pipeline.deal(conn, deal_id)
        return await _form_page(
            request, actor, conn, deal=row, values=values, errors=_errors(exc), status=422
        )
    except Conflict:
        # Show the current state (and its version), keep nothing of the stale input silently.
        row = await pipeline.deal(conn, deal_id)
        return await _form_page(
            request, actor, conn, deal=row, values=_row_values(row), status=409, conflict=True
        )
    return web.redirect(actor, f"deals/{deal_id}?notice=saved")


@router.post("/deals/{deal_id}/move")
async def move_deal(
    actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID, form: web.CheckedFormDep
) -> Response:
    stage_id = _uuid(_text(form, "stage_id"), "stage_id")
    back = web.safe_next(actor, _text(form, "next"), "deals")
    try:
        await pipeline.move_deal(conn, actor, deal_id, _version(form), stage_id)
        notice = "moved"
    except Conflict:
        notice = "stale"
    response = web.redirect(actor)
    separator = "&" if "?" in back else "?"
    response.headers["location"] = f"{back}{separator}notice={notice}"
    return response


@router.post("/deals/{deal_id}/delete")
async def delete_deal(
    actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID, form: web.CheckedFormDep
) -> Response:
    await pipeline.set_deal_deleted(conn, actor, deal_id, True)
    return web.redirect(actor, f"deals/{deal_id}?notice=deleted")


@router.post("/deals/{deal_id}/restore")
async def restore_deal(
    actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID, form: web.CheckedFormDep
) -> Response:
    await pipeline.set_deal_deleted(conn, actor, deal_id, False)
    return web.redirect(actor, f"deals/{deal_id}?notice=restored")
