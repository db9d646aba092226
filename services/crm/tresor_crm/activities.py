"""Notes/activities and tasks on contacts, companies and deals: fields and rules.

An activity (call, meeting, e-mail, note) is written once by its author and
may be deleted by its author (or an admin). A task has a title, a due date
and an assignee (the creator unless someone else is named), may hang on one
record, and is edited with the same version check as every other record.
SQL lives in `storage/activities.py`.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator, model_validator

from tresor_crm import history
from tresor_crm.db import Conn, Row
from tresor_crm.errors import Forbidden, InvalidInput, NotFound
from tresor_crm.identity import Actor
from tresor_crm.storage import activities as store

RecordType = Literal["contact", "company", "deal"]
RECORD_TYPES: tuple[RecordType, ...] = ("contact", "company", "deal")
Kind = Literal["call", "meeting", "email", "note"]
KINDS: tuple[Kind, ...] = ("note", "call", "meeting", "email")
BERLIN = ZoneInfo("Europe/Berlin")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def when(day: date, now: datetime | None = None) -> datetime:
    """A day picked in a form as a moment: now if it is today, else noon in Berlin."""
    now = now or datetime.now(UTC)
    if day == now.astimezone(BERLIN).date():
        return now
    return datetime.combine(day, time(12), tzinfo=BERLIN)


class ActivityFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    record_type: RecordType
    record_id: uuid.UUID
    kind: Kind = "note"
    occurred_at: datetime | None = None
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100000)]

    @field_validator("body")
    @classmethod
    def _body(cls, value: str) -> str:
        # Line breaks and tabs are text; other control characters are not.
        return _clean(value)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=BERLIN)
        return value


class TaskFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None
    done: bool = False
    record_type: RecordType | None = None
    record_id: uuid.UUID | None = None

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _clean(value)

    @model_validator(mode="after")
    def _record_pair(self) -> "TaskFields":
        if (self.record_type is None) != (self.record_id is None):
            raise ValueError("record_type and record_id go together")
        return self


@dataclass(frozen=True)
class TaskQuery:
    assignee_id: uuid.UUID | None = None
    open_only: bool = False
    record_type: RecordType | None = None
    record_id: uuid.UUID | None = None
    limit: int = 50
    # Keyset: (due date or "9999-12-31", id) of the previous page's last row.
    after: tuple[str, str] | None = None


# -- activities -----------------------------------------------------------------------------


async def _record_exists(conn: Conn, record_type: RecordType, record_id: uuid.UUID) -> None:
    if not await store.record_exists(conn, record_type, record_id):
        raise NotFound(f"no such {record_type}")


async def create_activity(conn: Conn, actor: Actor, fields: ActivityFields) -> Row:
    if not await store.record_exists(conn, fields.record_type, fields.record_id):
        raise InvalidInput(
            f"record_id: no such {fields.record_type}",
            {"record_id": f"no such {fields.record_type}"},
        )
    return await store.insert_activity(
        conn,
        fields,
        occurred_at=fields.occurred_at or datetime.now(UTC),
        author_id=actor.user_id,
        author_name=actor.username,
    )


async def activities_of(
    conn: Conn, record_type: RecordType, record_id: uuid.UUID, *, limit: int = 100
) -> list[Row]:
    await _record_exists(conn, record_type, record_id)
    return await store.activities_of(conn, record_type, record_id, limit)


async def recent_activities(conn: Conn, *, limit: int = 20) -> list[Row]:
    return await store.recent_activities(conn, limit)


async def delete_activity(conn: Conn, actor: Actor, activity_id: uuid.UUID) -> Row:
    row = await store.activity(conn, activity_id)
    if row["author_id"] != actor.user_id and not actor.is_admin:
        raise Forbidden("only its author (or an admin) may delete an activity")
    await store.delete_activity(conn, activity_id)
    return row


# -- tasks ----------------------------------------------------------------------------------

_TASK_FIELDS = ("title", "due_date", "assignee_id", "done", "record_type", "record_id")


def _task_values(row: Row) -> dict[str, Any]:
    return {name: row.get(name) for name in _TASK_FIELDS}


async def _task_history(
    conn: Conn, actor: Actor, task_id: uuid.UUID, changed: dict[str, Any]
) -> None:
    await history.record(
        conn,
        record_type="task",
        record_id=task_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed=changed,
    )


async def _checked(conn: Conn, actor: Actor, fields: TaskFields) -> TaskFields:
    if (
        fields.record_type is not None
        and fields.record_id is not None
        and not await store.record_exists(conn, fields.record_type, fields.record_id)
    ):
        message = f"no such {fields.record_type}"
        raise InvalidInput(f"record_id: {message}", {"record_id": message})
    if fields.assignee_id is None:
        fields = fields.model_copy(update={"assignee_id": actor.user_id})
    return fields


async def create_task(conn: Conn, actor: Actor, fields: TaskFields) -> Row:
    fields = await _checked(conn, actor, fields)
    row = await store.insert_task(conn, fields, actor.user_id)
    await _task_history(conn, actor, row["id"], history.changes({}, _task_values(row)))
    return row


async def task(conn: Conn, task_id: uuid.UUID) -> Row:
    return await store.task(conn, task_id)


async def update_task(
    conn: Conn, actor: Actor, task_id: uuid.UUID, version: int, fields: TaskFields
) -> Row:
    before = await store.task(conn, task_id)
    fields = await _checked(conn, actor, fields)
    row = await store.update_task(conn, task_id, version, fields)
    await _task_history(
        conn, actor, task_id, history.changes(_task_values(before), _task_values(row))
    )
    return row


async def set_task_done(
    conn: Conn, actor: Actor, task_id: uuid.UUID, done: bool, version: int | None = None
) -> Row:
    """Ticked off (or opened again). With a version, a stale tick is refused."""
    before = await store.task(conn, task_id)
    row = await store.set_task_done(conn, task_id, done, version)
    await _task_history(
        conn, actor, task_id, history.changes(_task_values(before), _task_values(row))
    )
    return row


async def delete_task(conn: Conn, actor: Actor, task_id: uuid.UUID) -> None:
    await store.task(conn, task_id)
    await store.delete_task(conn, task_id)
    await _task_history(conn, actor, task_id, {"deleted": (False, True)})


async def list_tasks(conn: Conn, query: TaskQuery) -> list[Row]:
    if query.record_type is not None and query.record_id is not None:
        await _record_exists(conn, query.record_type, query.record_id)
    return await store.list_tasks(conn, query)


def record_path(record_type: str, record_id: uuid.UUID) -> str:
    """Where a record's page is, below the session's prefix."""
    folder = {"contact": "contacts", "company": "companies", "deal": "deals"}[record_type]
    return f"/{folder}/{record_id}"
