"""SQL for activities (notes, calls, meetings, e-mails) and tasks. Tenant-bound connections."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import errors, sql

from tresor_crm.db import Conn, Row
from tresor_crm.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from tresor_crm.activities import ActivityFields, TaskFields, TaskQuery

_TABLES = {"contact": "contacts", "company": "companies", "deal": "deals"}
_RECORD = (
    "CASE WHEN {t}.contact_id IS NOT NULL THEN 'contact' "
    "WHEN {t}.company_id IS NOT NULL THEN 'company' "
    "WHEN {t}.deal_id IS NOT NULL THEN 'deal' END AS record_type, "
    "COALESCE({t}.contact_id, {t}.company_id, {t}.deal_id) AS record_id, "
    "COALESCE(NULLIF(trim(rc.first_name || ' ' || rc.last_name), ''), rco.name, rd.title) "
    "AS record_label"
)
_RECORD_JOINS = (
    " LEFT JOIN contacts rc ON rc.id = {t}.contact_id"
    " LEFT JOIN companies rco ON rco.id = {t}.company_id"
    " LEFT JOIN deals rd ON rd.id = {t}.deal_id"
)
ACTIVITY_COLUMNS = (
    "a.id, a.kind, a.occurred_at, a.body, a.author_id, a.author_name, a.created_at, "
    + _RECORD.format(t="a")
)
ACTIVITY_SOURCE = "activities a" + _RECORD_JOINS.format(t="a")
TASK_COLUMNS = (
    "t.id, t.title, t.due_date, t.assignee_id, t.done, t.done_at, t.version, t.created_at, "
    "t.created_by, " + _RECORD.format(t="t")
)
TASK_SOURCE = "tasks t" + _RECORD_JOINS.format(t="t")
_NO_DUE_DATE = "9999-12-31"


async def _one(conn: Conn, query: str, params: Any) -> Row | None:
    cur = await conn.execute(sql.SQL(query), params)
    row: Row | None = await cur.fetchone()
    return row


def _record_columns(record_type: str | None, record_id: uuid.UUID | None) -> dict[str, Any]:
    return {
        f"{kind}_id": record_id if record_type == kind else None
        for kind in ("contact", "company", "deal")
    }


async def record_exists(conn: Conn, record_type: str, record_id: uuid.UUID) -> bool:
    table = _TABLES[record_type]
    row = await _one(
        conn, f"SELECT 1 FROM {table} WHERE id = %s AND deleted_at IS NULL", (record_id,)
    )
    return row is not None


def _reference_error(exc: Exception) -> Exception:
    if isinstance(exc, errors.ForeignKeyViolation):
        return InvalidInput("record_id: no such record", {"record_id": "no such record"})
    return exc


# -- activities -----------------------------------------------------------------------------


async def insert_activity(
    conn: Conn,
    fields: ActivityFields,
    *,
    occurred_at: datetime,
    author_id: uuid.UUID,
    author_name: str,
) -> Row:
    activity_id = uuid.uuid4()
    try:
        await conn.execute(
            "INSERT INTO activities (id, kind, occurred_at, body, author_id, author_name, "
            "contact_id, company_id, deal_id) VALUES (%(id)s, %(kind)s, %(occurred_at)s, "
            "%(body)s, %(author_id)s, %(author_name)s, %(contact_id)s, %(company_id)s, "
            "%(deal_id)s)",
            {
                "id": activity_id,
                "kind": fields.kind,
                "occurred_at": occurred_at,
                "body": fields.body,
                "author_id": author_id,
                "author_name": author_name,
                **_record_columns(fields.record_type, fields.record_id),
            },
        )
    except errors.ForeignKeyViolation as exc:
        raise _reference_error(exc) from exc
    return await activity(conn, activity_id)


async def activity(conn: Conn, activity_id: uuid.UUID) -> Row:
    row = await _one(
        conn,
        "SELECT " + ACTIVITY_COLUMNS + " FROM " + ACTIVITY_SOURCE + " WHERE a.id = %s",
        (activity_id,),
    )
    if row is None:
        raise NotFound("no such activity")
    return row


async def activities_of(
    conn: Conn, record_type: str, record_id: uuid.UUID, limit: int
) -> list[Row]:
    column = f"{record_type}_id"
    assert column in ("contact_id", "company_id", "deal_id")
    cur = await conn.execute(
        sql.SQL(
            "SELECT "
            + ACTIVITY_COLUMNS
            + " FROM "
            + ACTIVITY_SOURCE
            + " WHERE a."
            + column
            + " = %s ORDER BY a.occurred_at DESC, a.id DESC LIMIT %s"
        ),
        (record_id, limit),
    )
    return await cur.fetchall()


async def recent_activities(conn: Conn, limit: int) -> list[Row]:
    cur = await conn.execute(
        sql.SQL(
            "SELECT "
            + ACTIVITY_COLUMNS
            + " FROM "
            + ACTIVITY_SOURCE
            + " ORDER BY a.occurred_at DESC, a.id DESC LIMIT %s"
        ),
        (limit,),
    )
    return await cur.fetchall()


async def delete_activity(conn: Conn, activity_id: uuid.UUID) -> None:
    cur = await conn.execute("DELETE FROM activities WHERE id = %s", (activity_id,))
    if cur.rowcount == 0:
        raise NotFound("no such activity")


# -- tasks ----------------------------------------------------------------------------------


async def insert_task(conn: Conn, fields: TaskFields, created_by: uuid.UUID) -> Row:
    task_id = uuid.uuid4()
    try:
        await conn.execute(
            "INSERT INTO tasks (id, title, due_date, assignee_id, done, done_at, contact_id, "
            "company_id, deal_id, created_by) VALUES (%(id)s, %(title)s, %(due_date)s, "
            "%(assignee_id)s, %(done)s, CASE WHEN %(done)s THEN now() END, %(contact_id)s, "
            "%(company_id)s, %(deal_id)s, %(created_by)s)",
            {
                "id": task_id,
                "title": fields.title,
                "due_date": fields.due_date,
                "assignee_id": fields.assignee_id,
                "done": fields.done,
                "created_by": created_by,
                **_record_columns(fields.record_type, fields.record_id),
            },
        )
    except errors.ForeignKeyViolation as exc:
        raise _reference_error(exc) from exc
    return await task(conn, task_id)


async def task(conn: Conn, task_id: uuid.UUID) -> Row:
    row = await _one(
        conn, "SELECT " + TASK_COLUMNS + " FROM " + TASK_SOURCE + " WHERE t.id = %s", (task_id,)
    )
    if row is None:
        raise NotFound("no such task")
    return row


def _stale() -> Conflict:
    return Conflict("someone else changed this task meanwhile; reload and edit again")


async def update_task(conn: Conn, task_id: uuid.UUID, version: int, fields: TaskFields) -> Row:
    try:
        row = await _one(
            conn,
            "UPDATE tasks SET title = %(title)s, due_date = %(due_date)s, "
            "assignee_id = %(assignee_id)s, "
            "done_at = CASE WHEN NOT %(done)s THEN NULL WHEN done THEN done_at ELSE now() END, "
            "done = %(done)s, contact_id = %(contact_id)s, company_id = %(company_id)s, "
            "deal_id = %(deal_id)s, version = version + 1 "
            "WHERE id = %(id)s AND version = %(version)s RETURNING id",
            {
                "id": task_id,
                "version": version,
                "title": fields.title,
                "due_date": fields.due_date,
                "assignee_id": fields.assignee_id,
                "done": fields.done,
                **_record_columns(fields.record_type, fields.record_id),
            },
        )
    except errors.ForeignKeyViolation as exc:
        raise _reference_error(exc) from exc
    if row is None:
        await task(conn, task_id)
        raise _stale()
    return await task(conn, task_id)


async def set_task_done(conn: Conn, task_id: uuid.UUID, done: bool, version: int | None) -> Row:
    row = await _one(
        conn,
        "UPDATE tasks SET done_at = CASE WHEN NOT %(done)s THEN NULL WHEN done THEN done_at "
        "ELSE now() END, done = %(done)s, version = version + 1 "
        "WHERE id = %(id)s AND (%(version)s::int IS NULL OR version = %(version)s) RETURNING id",
        {"id": task_id, "done": done, "version": version},
    )
    if row is None:
        await task(conn, task_id)
        raise _stale()
    return await task(conn, task_id)


async def delete_task(conn: Conn, task_id: uuid.UUID) -> None:
    cur = await conn.execute("DELETE FROM tasks WHERE id = %s", (task_id,))
    if cur.rowcount == 0:
        raise NotFound("no such task")


async def list_tasks(conn: Conn, query: TaskQuery) -> list[Row]:
    """Due first (no due date last), then oldest first; keyset after the cursor's row."""
    sort = f"COALESCE(t.due_date, DATE '{_NO_DUE_DATE}')"
    conditions: list[str] = ["TRUE"]
    params: dict[str, Any] = {"limit": query.limit}
    if query.assignee_id is not None:
        conditions.append("t.assignee_id = %(assignee_id)s")
        params["assignee_id"] = query.assignee_id
    if query.open_only:
        conditions.append("NOT t.done")
    if query.record_type is not None and query.record_id is not None:
        column = f"{query.record_type}_id"
        assert column in ("contact_id", "company_id", "deal_id")
        conditions.append(f"t.{column} = %(record_id)s")
        params["record_id"] = query.record_id
    if query.after is not None:
        conditions.append(f"({sort}, t.id) > (%(after_value)s::date, %(after_id)s::uuid)")
        params["after_value"], params["after_id"] = query.after
    cur = await conn.execute(
        sql.SQL(
            f"SELECT {TASK_COLUMNS}, {sort} AS sort_value FROM {TASK_SOURCE} "
            f"WHERE {' AND '.join(conditions)} ORDER BY {sort}, t.id LIMIT %(limit)s"
        ),
        params,
    )
    return await cur.fetchall()
