"""Pages for notes/activities and tasks: forms posted from record pages, my tasks.

The record pages (contact, company, deal) and the dashboard include
`activities/_record_section.html` and `activities/_dashboard.html`; their views
fill them by adding `**await record_section(conn, actor, type, id)` or
`**await dashboard_section(conn, actor)` to the render context. Without it the
fragments still offer their forms and a link to the full page.
"""

import uuid
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from tresor_crm import activities, i18n, web
from tresor_crm.activities import ActivityFields, RecordType, TaskFields, TaskQuery
from tresor_crm.db import Conn
from tresor_crm.deps import ActorDep, ConnDep
from tresor_crm.errors import Conflict, InvalidInput
from tresor_crm.identity import Actor
from tresor_crm.records import validation_error

router = APIRouter(prefix="/s/{link}", include_in_schema=False)

i18n.add_texts(
    "de",
    {
        "activities": "Notizen und Aktivitäten",
        "tasks": "Aufgaben",
        "my_tasks": "Meine offenen Aufgaben",
        "recent_activity": "Letzte Aktivitäten",
        "add_activity": "Notiz erfassen",
        "add_task": "Aufgabe anlegen",
        "kind": "Art",
        "kind_note": "Notiz",
        "kind_call": "Anruf",
        "kind_meeting": "Termin",
        "kind_email": "E-Mail",
        "occurred_on": "Datum",
        "body": "Text",
        "task_title": "Aufgabe",
        "due_date": "Fällig am",
        "assignee_id": "Zuständig",
        "assignee_me": "ich",
        "assignee_other": "jemand anderes",
        "mark_done": "Erledigt",
        "reopen": "Wieder öffnen",
        "done": "erledigt",
        "overdue": "überfällig",
        "no_activities": "Noch keine Notizen.",
        "no_tasks": "Keine offenen Aufgaben.",
        "all_notes_and_tasks": "Alle Notizen und Aufgaben",
        "all_my_tasks": "Alle meine Aufgaben",
        "show_done": "Erledigte zeigen",
        "task_stale": "Jemand anderes hat diese Aufgabe inzwischen geändert.",
        "back": "Zurück",
        "by": "von",
        "record_deal": "Deal",
    },
)
i18n.add_texts(
    "en",
    {
        "activities": "Notes and activities",
        "tasks": "Tasks",
        "my_tasks": "My open tasks",
        "recent_activity": "Recent activity",
        "add_activity": "Add a note",
        "add_task": "Add a task",
        "kind": "Kind",
        "kind_note": "Note",
        "kind_call": "Call",
        "kind_meeting": "Meeting",
        "kind_email": "E-mail",
        "occurred_on": "Date",
        "body": "Text",
        "task_title": "Task",
        "due_date": "Due on",
        "assignee_id": "Assignee",
        "assignee_me": "me",
        "assignee_other": "someone else",
        "mark_done": "Done",
        "reopen": "Reopen",
        "done": "done",
        "overdue": "overdue",
        "no_activities": "No notes yet.",
        "no_tasks": "No open tasks.",
        "all_notes_and_tasks": "All notes and tasks",
        "all_my_tasks": "All my tasks",
        "show_done": "Show done",
        "task_stale": "Someone else changed this task meanwhile.",
        "back": "Back",
        "by": "by",
        "record_deal": "Deal",
    },
)


# -- context for other areas' pages ---------------------------------------------------------


async def record_section(
    conn: Conn, actor: Actor, record_type: RecordType, record_id: uuid.UUID
) -> dict[str, Any]:
    """What `activities/_record_section.html` shows for one record."""
    return {
        "section_activities": await activities.activities_of(
            conn, record_type, record_id, limit=50
        ),
        "section_tasks": await activities.list_tasks(
            conn, TaskQuery(record_type=record_type, record_id=record_id, limit=100)
        ),
        "today": date.today().isoformat(),
    }


async def dashboard_section(conn: Conn, actor: Actor) -> dict[str, Any]:
    """What `activities/_dashboard.html` shows: my open tasks and the recent activity."""
    return {
        "my_open_tasks": await activities.list_tasks(
            conn, TaskQuery(assignee_id=actor.user_id, open_only=True, limit=20)
        ),
        "recent_activity": await activities.recent_activities(conn, limit=15),
        "today": date.today().isoformat(),
    }


# -- helpers --------------------------------------------------------------------------------


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _record(form: FormData) -> tuple[RecordType, uuid.UUID]:
    record_type = _text(form, "record_type")
    if record_type not in activities.RECORD_TYPES:
        raise InvalidInput("record_type: unknown", {"record_type": "unknown"})
    try:
        return record_type, uuid.UUID(_text(form, "record_id"))
    except ValueError:
        raise InvalidInput("record_id: not an id", {"record_id": "not an id"}) from None


def _back(actor: Actor, form: FormData, default: str = "") -> Response:
    response = web.redirect(actor)
    response.headers["location"] = web.safe_next(actor, _text(form, "next"), default)
    return response


def _errors(exc: InvalidInput) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, message in exc.fields.items():
        errors.setdefault(name.split(".")[0] or "form", message)
    return errors or {"form": str(exc)}


# -- activities -----------------------------------------------------------------------------


@router.post("/activities")
async def create_activity(
    request: Request, actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep
) -> Response:
    values = {name: _text(form, name) for name in ("kind", "occurred_on", "body")}
    try:
        record_type, record_id = _record(form)
        occurred = date.fromisoformat(values["occurred_on"]) if values["occurred_on"] else None
    except ValueError:
        return await _activity_form(request, actor, form, values, {"occurred_on": "not a date"})
    except InvalidInput as exc:
        return await _activity_form(request, actor, form, values, _errors(exc))
    try:
        fields = ActivityFields.model_validate(
            {
                "record_type": record_type,
                "record_id": record_id,
                "kind": values["kind"] or "note",
                "occurred_at": activities.when(occurred) if occurred else None,
                "body": values["body"],
            }
        )
        await activities.create_activity(conn, actor, fields)
    except ValidationError as exc:
        return await _activity_form(request, actor, form, values, _errors(validation_error(exc)))
    except InvalidInput as exc:
        return await _activity_form(request, actor, form, values, _errors(exc))
    return _back(actor, form, activities.record_path(record_type, record_id).lstrip("/"))


async def _activity_form(
    request: Request,
    actor: Actor,
    form: FormData,
    values: dict[str, str],
    errors: dict[str, str],
) -> Response:
    return await web.render(
        request,
        actor,
        "activities/activity_form.html",
        status=422,
        values=values,
        errors=errors,
        record_type=_text(form, "record_type"),
        record_id=_text(form, "record_id"),
        next=web.safe_next(actor, _text(form, "next")),
        kinds=activities.KINDS,
    )


@router.post("/activities/{activity_id}/delete")
async def delete_activity(
    actor: ActorDep, conn: ConnDep, activity_id: uuid.UUID, form: web.CheckedFormDep
) -> Response:
    row = await activities.delete_activity(conn, actor, activity_id)
    return _back(actor, form, activities.record_path(row["record_type"], row["record_id"])[1:])


@router.get("/records/{record_type}/{record_id}/activities", response_class=HTMLResponse)
async def record_page(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    record_type: RecordType,
    record_id: uuid.UUID,
) -> Response:
    """All notes and tasks of one record on a page of their own."""
    return await web.render(
        request,
        actor,
        "activities/record.html",
        record_type=record_type,
        record_id=record_id,
        **await record_section(conn, actor, record_type, record_id),
    )


# -- tasks ----------------------------------------------------------------------------------


@router.get("/tasks", response_class=HTMLResponse)
async def my_tasks(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    show: Literal["open", "all"] = "open",
    notice: str | None = None,
) -> Response:
    rows = await activities.list_tasks(
        conn, TaskQuery(assignee_id=actor.user_id, open_only=show == "open", limit=500)
    )
    return await web.render(
        request,
        actor,
        "activities/tasks.html",
        nav="dashboard",
        tasks=rows,
        show=show,
        today=date.today().isoformat(),
        notice=notice if notice == "stale" else None,
    )


@router.post("/tasks")
async def create_task(
    request: Request, actor: ActorDep, conn: ConnDep, form: web.CheckedFormDep
) -> Response:
    values = {name: _text(form, name) for name in ("title", "due_date", "assignee_id")}
    data: dict[str, Any] = {
        "title": values["title"],
        "due_date": values["due_date"] or None,
        "assignee_id": values["assignee_id"] or None,
    }
    if _text(form, "record_type"):
        data["record_type"] = _text(form, "record_type")
        data["record_id"] = _text(form, "record_id")
    try:
        fields = TaskFields.model_validate(data)
        await activities.create_task(conn, actor, fields)
    except ValidationError as exc:
        return await _task_form(request, actor, form, values, _errors(validation_error(exc)))
    except InvalidInput as exc:
        return await _task_form(request, actor, form, values, _errors(exc))
    return _back(actor, form, "tasks")


async def _task_form(
    request: Request,
    actor: Actor,
    form: FormData,
    values: dict[str, str],
    errors: dict[str, str],
) -> Response:
    return await web.render(
        request,
        actor,
        "activities/task_form.html",
        status=422,
        values=values,
        errors=errors,
        record_type=_text(form, "record_type"),
        record_id=_text(form, "record_id"),
        next=web.safe_next(actor, _text(form, "next")),
    )


@router.post("/tasks/{task_id}/done")
async def mark_task_done(
    actor: ActorDep, conn: ConnDep, task_id: uuid.UUID, form: web.CheckedFormDep
) -> Response:
    done = _text(form, "done") != "0"
    try:
        version = int(_text(form, "version")) if _text(form, "version") else None
    except ValueError:
        version = None
    try:
        await activities.set_task_done(conn, actor, task_id, done, version)
    except Conflict:
        return web.redirect(actor, "tasks?notice=stale")
    return _back(actor, form, "tasks")


@router.post("/tasks/{task_id}/delete")
async def delete_task(
    actor: ActorDep, conn: ConnDep, task_id: uuid.UUID, form: web.CheckedFormDep
) -> Response:
    await activities.delete_task(conn, actor, task_id)
    return _back(actor, form, "tasks")
