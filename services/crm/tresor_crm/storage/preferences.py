"""SQL for what the web UI keeps per user (the language) and shows on the dashboard."""

import uuid

from tresor_crm.db import Conn, Row


async def language(conn: Conn, user_id: uuid.UUID) -> str | None:
    cur = await conn.execute("SELECT language FROM user_preferences WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return str(row["language"]) if row else None


async def set_language(conn: Conn, user_id: uuid.UUID, language: str) -> None:
    await conn.execute(
        "INSERT INTO user_preferences (user_id, language) VALUES (%s, %s) "
        "ON CONFLICT (tenant_id, user_id) DO UPDATE "
        "SET language = excluded.language, updated_at = now()",
        (user_id, language),
    )


async def recent_changes(conn: Conn, limit: int = 60) -> list[Row]:
    """The latest history rows on contacts and companies, with the record's current name."""
    cur = await conn.execute(
        """SELECT h.changed_at, h.changed_by_name, h.record_type, h.record_id, h.field,
                  coalesce(nullif(trim(c.first_name || ' ' || c.last_name), ''), co.name, '')
                      AS label,
                  coalesce(c.deleted_at, co.deleted_at) IS NOT NULL AS deleted
           FROM record_history h
           LEFT JOIN contacts c ON h.record_type = 'contact' AND c.id = h.record_id
           LEFT JOIN companies co ON h.record_type = 'company' AND co.id = h.record_id
           WHERE h.record_type IN ('contact', 'company')
           ORDER BY h.id DESC LIMIT %s""",
        (limit,),
    )
    return await cur.fetchall()
