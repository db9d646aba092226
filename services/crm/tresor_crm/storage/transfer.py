"""SQL for CSV import and export. Every call runs on a tenant-bound connection."""

from tresor_crm.db import Conn


async def company_ids_by_name(conn: Conn, names: list[str]) -> dict[str, object]:
    """lower(name) -> id of live companies with these names (the oldest one on a tie)."""
    if not names:
        return {}
    cur = await conn.execute(
        "SELECT DISTINCT ON (lower(name)) lower(name) AS key, id FROM companies "
        "WHERE deleted_at IS NULL AND lower(name) = ANY(%s) ORDER BY lower(name), created_at",
        ([n.lower() for n in names],),
    )
    return {row["key"]: row["id"] for row in await cur.fetchall()}
