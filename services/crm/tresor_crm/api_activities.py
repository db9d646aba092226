"""JSON API for notes/activities and tasks: `/s/<link>/api/v1/...`.

Handlers translate: request to domain call, result to response.
"""

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, ValidationError

from tresor_crm import activities
from tresor_crm.activities import ActivityFields, Kind, RecordType, TaskFields, TaskQuery
from tresor_crm.db import Row
from tresor_crm.deps import ActorDep, ConnDep
from tresor_crm.records import decode_cursor, encode_cursor, validation_error

router = APIRouter(prefix="/s/{link}/api/v1", tags=["activities and tasks"])

Limit = Annotated[int, Query(ge=1, le=200)]


class ActivityOut(BaseModel):
    id: uuid.UUID
    kind: Kind
    occurred_at: datetime
    body: str
    author_id: uuid.UUID | None
    author_name: str
    record_type: RecordType
    record_id: uuid.UUID
    record_label: str | None
    created_at: datetime


class TaskOut(BaseModel):
    id: uuid.UUID
    title: str
    due_date: date | None
    assignee_id: uuid.UUID | None
    done: bool
    done_at: datetime | None
    record_type: RecordType | None
    record_id: uuid.UUID | None
    record_label: str | None
    version: int
    created_at: datetime
    created_by: uuid.UUID | None


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class TaskUpdate(TaskFields):
    version: int = Field(ge=1, description="the version the edit started from")


class TaskDone(BaseModel):
    done: bool = True
    version: int | None = Field(default=None, ge=1, description="refuse if changed since")


def _parse(model: type[BaseModel], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _task(row: Row) -> TaskOut:
    return TaskOut.model_validate(row)


# -- activities -----------------------------------------------------------------------------


@router.get("/activities", response_model=list[ActivityOut])
async def list_activities(
    conn: ConnDep,
    record_type: RecordType | None = None,
    record_id: uuid.UUID | None = None,
    limit: Limit = 100,
) -> list[ActivityOut]:
    """The activities on one record, newest first; without a record, the tenant's latest."""
    if record_type is not None and record_id is not None:
        rows = await activities.activities_of(conn, record_type, record_id, limit=limit)
    elif record_type is None and record_id is None:
        rows = await activities.recent_activities(conn, limit=limit)
    else:
        from tresor_crm.errors import InvalidInput

        raise InvalidInput("record_type and record_id go together")
    return [ActivityOut.model_validate(row) for row in rows]


@router.post("/activities", response_model=ActivityOut, status_code=201)
async def create_activity(actor: ActorDep, conn: ConnDep, body: dict[str, Any]) -> ActivityOut:
    fields = _parse(ActivityFields, body)
    return ActivityOut.model_validate(await activities.create_activity(conn, actor, fields))


@router.get("/activities/{activity_id}", response_model=ActivityOut)
async def get_activity(conn: ConnDep, activity_id: uuid.UUID) -> ActivityOut:
    from tresor_crm.storage import activities as store

    return ActivityOut.model_validate(await store.activity(conn, activity_id))


@router.delete("/activities/{activity_id}", status_code=204)
async def delete_activity(actor: ActorDep, conn: ConnDep, activity_id: uuid.UUID) -> Response:
    """Only its author (or an admin) may delete an activity."""
    await activities.delete_activity(conn, actor, activity_id)
    return Response(status_code=204)


# -- tasks ----------------------------------------------------------------------------------


@router.get("/tasks", response_model=TaskPage)
async def list_tasks(
    actor: ActorDep,
    conn: ConnDep,
    mine: bool = False,
    open: bool = False,
    assignee_id: uuid.UUID | None = None,
    record_type: RecordType | None = None,
    record_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Tasks by due date (none last); `mine` = assigned to me, `open` = not done."""
    query = TaskQuery(
        assignee_id=actor.user_id if mine else assignee_id,
        open_only=open,
        record_type=record_type,
        record_id=record_id,
        limit=limit + 1,
        after=decode_cursor(cursor) if cursor else None,
    )
    rows = await activities.list_tasks(conn, query)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["sort_value"], last["id"])
    return TaskPage(items=[_task(row) for row in rows[:limit]], next_cursor=next_cursor)


@router.post("/tasks", response_model=TaskOut, status_code=201)
async def create_task(actor: ActorDep, conn: ConnDep, body: dict[str, Any]) -> TaskOut:
    fields = _parse(TaskFields, body)
    return _task(await activities.create_task(conn, actor, fields))


@router.get("/tasks/{task_id}", response_model=TaskOut)
async def get_task(conn: ConnDep, task_id: uuid.UUID) -> TaskOut:
    return _task(await activities.task(conn, task_id))


@router.put("/tasks/{task_id}", response_model=TaskOut)
async def update_task(
    actor: ActorDep, conn: ConnDep, task_id: uuid.UUID, body: dict[str, Any]
) -> TaskOut:
    update: TaskUpdate = _parse(TaskUpdate, body)
    fields = TaskFields.model_validate(update.model_dump(exclude={"version"}))
    return _task(await activities.update_task(conn, actor, task_id, update.version, fields))


@router.post("/tasks/{task_id}/done", response_model=TaskOut)
async def mark_task_done(
    actor: ActorDep, conn: ConnDep, task_id: uuid.UUID, body: dict[str, Any] | None = None
) -> TaskOut:
    """Mark done (or, with `"done": false`, open again)."""
    change: TaskDone = _parse(TaskDone, body or {})
    return _task(await activities.set_task_done(conn, actor, task_id, change.done, change.version))


@router.delete("/tasks/{task_id}", status_code=204)
async def delete_task(actor: ActorDep, conn: ConnDep, task_id: uuid.UUID) -> Response:
    await activities.delete_task(conn, actor, task_id)
    return Response(status_code=204)
