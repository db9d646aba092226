"""The change history: one row per changed field, with the old and the new value."""

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from psycopg.types.json import Jsonb

from tresor_crm.db import Conn


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field -> (old, new) for every field whose value differs."""
    return {
        field: (_plain(before.get(field)), _plain(value))
        for field, value in after.items()
        if _plain(before.get(field)) != _plain(value)
    }


async def record(
    conn: Conn,
    *,
    record_type: str,
    record_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    actor_name: str,
    changed: Mapping[str, tuple[Any, Any]],
) -> None:
    if not changed:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO record_history (record_type, record_id, changed_by,
                   changed_by_name, field, old_value, new_value)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            [
                (record_type, record_id, actor_id, actor_name, field, Jsonb(old), Jsonb(new))
                for field, (old, new) in changed.items()
            ],
        )


async def of_record(conn: Conn, record_type: str, record_id: uuid.UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(
        """SELECT changed_at, changed_by, changed_by_name, field, old_value, new_value
           FROM record_history WHERE record_type = %s AND record_id = %s
           ORDER BY id DESC LIMIT 500""",
        (record_type, record_id),
    )
    return [dict(row) for row in await cur.fetchall()]


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
