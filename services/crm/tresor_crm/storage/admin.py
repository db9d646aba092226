"""SQL for the admin area: custom field definitions and erasures. Tenant-bound connections."""

import uuid

from psycopg import errors as pg_errors
from psycopg import sql

from tresor_crm.db import Conn, Row
from tresor_crm.errors import Conflict, NotFound

FIELD_COLUMNS = "id, entity, key, label, kind, choices, position"


# -- custom fields --------------------------------------------------------------------------


async def custom_fields(conn: Conn, entity: str | None = None) -> list[Row]:
    if entity is None:
        cur = await conn.execute(
            "SELECT " + FIELD_COLUMNS + " FROM custom_fields ORDER BY entity, position, key"
        )
    else:
        cur = await conn.execute(
            "SELECT " + FIELD_COLUMNS + " FROM custom_fields WHERE entity = %s "
            "ORDER BY position, key",
            (entity,),
        )
    return await cur.fetchall()


async def insert_custom_field(
    conn: Conn, *, entity: str, key: str, label: str, kind: str, choices: list[str]
) -> Row:
    try:
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO custom_fields (id, entity, key, label, kind, choices, position) "
                "VALUES (%s, %s, %s, %s, %s, %s, "
                "(SELECT coalesce(max(position), 0) + 1 FROM custom_fields WHERE entity = %s)) "
                "RETURNING " + FIELD_COLUMNS,
                (uuid.uuid4(), entity, key, label, kind, choices, entity),
            )
            row = await cur.fetchone()
    except pg_errors.UniqueViolation:
        raise Conflict(f"a {entity} field with the key {key!r} exists already") from None
    assert row is not None
    return row


async def delete_custom_field(conn: Conn, field_id: uuid.UUID) -> Row:
    cur = await conn.execute(
        "DELETE FROM custom_fields WHERE id = %s RETURNING " + FIELD_COLUMNS, (field_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no such custom field")
    return row


# -- erasure --------------------------------------------------------------------------------


async def contact_exists(conn: Conn, contact_id: uuid.UUID) -> bool:
    """Soft-deleted contacts count: erasure reaches them too."""
    cur = await conn.execute("SELECT 1 FROM contacts WHERE id = %s", (contact_id,))
    return await cur.fetchone() is not None


async def erase_contact_rows(conn: Conn, contact_id: uuid.UUID) -> dict[str, int]:
    """Removes the contact and everything that hangs on it; counts per kind, no content."""
    counts: dict[str, int] = {}
    # History of the contact and of the things attached to it.
    cur = await conn.execute(
        """DELETE FROM record_history h
           WHERE (h.record_type = 'contact' AND h.record_id = %(id)s)
              OR (h.record_type IN ('activity', 'note') AND h.record_id IN
                    (SELECT id FROM activities WHERE contact_id = %(id)s))
              OR (h.record_type = 'task' AND h.record_id IN
                    (SELECT id FROM tasks WHERE contact_id = %(id)s))
              OR (h.record_type = 'document' AND h.record_id IN
                    (SELECT id FROM documents WHERE contact_id = %(id)s))""",
        {"id": contact_id},
    )
    counts["history"] = cur.rowcount
    for table in ("activities", "tasks", "documents", "deal_contacts"):
        cur = await conn.execute(
            sql.SQL("DELETE FROM {} WHERE contact_id = %s").format(sql.Identifier(table)),
            (contact_id,),
        )
        counts[table] = cur.rowcount
    cur = await conn.execute("DELETE FROM contacts WHERE id = %s", (contact_id,))
    counts["contacts"] = cur.rowcount
    return counts


async def insert_erasure(
    conn: Conn, *, erasure_id: uuid.UUID, contact_id: uuid.UUID, actor_id: uuid.UUID, reason: str
) -> Row:
    cur = await conn.execute(
        "INSERT INTO erasures (id, record_type, record_id, erased_by, reason) "
        "VALUES (%s, 'contact', %s, %s, %s) "
        "RETURNING id, record_type, record_id, erased_at, erased_by, reason",
        (erasure_id, contact_id, actor_id, reason),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def erasures(conn: Conn, limit: int = 500) -> list[Row]:
    cur = await conn.execute(
        "SELECT id, record_type, record_id, erased_at, erased_by, reason FROM erasures "
        "ORDER BY erased_at DESC, id LIMIT %s",
        (limit,),
    )
    return await cur.fetchall()


async def erased_contacts_present(conn: Conn) -> list[uuid.UUID]:
    """Contacts that were erased once and are back (a restored backup)."""
    cur = await conn.execute(
        "SELECT c.id FROM contacts c JOIN erasures e "
        "ON e.record_type = 'contact' AND e.record_id = c.id"
    )
    return [row["id"] for row in await cur.fetchall()]
