"""SQL for reading everything a tenant owns, kind by kind, in batches (exports).

Each kind is read through a server-side cursor on the caller's tenant-bound
transaction: PostgreSQL hands over `batch_size` rows at a time, so memory stays
flat however large the tenant is, and row-level security limits every row to
the tenant. Soft-deleted records are included; the reader decides.
"""

from collections.abc import AsyncIterator
from typing import Literal

from tresor_crm.db import Conn, Row
from tresor_crm.storage.records import COMPANY_COLUMNS, CONTACT_COLUMNS

Kind = Literal["company", "contact", "deal", "activity", "task"]

# In the order an importer needs them: what is referred to comes first.
KINDS: tuple[Kind, ...] = ("company", "contact", "deal", "activity", "task")

_QUERIES: dict[Kind, str] = {
    "company": f"SELECT tenant_id, {COMPANY_COLUMNS} FROM companies ORDER BY id",
    "contact": (
        f"SELECT c.tenant_id, {CONTACT_COLUMNS} FROM contacts c "
        "LEFT JOIN companies co ON co.id = c.company_id ORDER BY c.id"
    ),
    "deal": (
        "SELECT d.id, d.tenant_id, d.title, d.company_id, d.value_cents, d.stage_id, "
        "s.name AS stage_name, d.expected_close, d.owner_id, d.outcome, d.outcome_reason, "
        "d.version, d.created_at, d.updated_at, d.deleted_at, "
        "ARRAY(SELECT dc.contact_id FROM deal_contacts dc WHERE dc.deal_id = d.id "
        "ORDER BY dc.contact_id) AS contact_ids "
        "FROM deals d LEFT JOIN pipeline_stages s ON s.id = d.stage_id ORDER BY d.id"
    ),
    "activity": (
        "SELECT id, tenant_id, kind, occurred_at, body, author_id, author_name, contact_id, "
        "company_id, deal_id, created_at FROM activities ORDER BY id"
    ),
    "task": (
        "SELECT id, tenant_id, title, due_date, assignee_id, done, done_at, contact_id, "
        "company_id, deal_id, version, created_at FROM tasks ORDER BY id"
    ),
}


async def rows_of(conn: Conn, kind: Kind, *, batch_size: int = 500) -> AsyncIterator[Row]:
    """Every row of one kind in the connection's tenant, fetched `batch_size` at a time."""
    async with conn.cursor(name=f"tenant_{kind}") as cursor:
        cursor.itersize = batch_size
        await cursor.execute(_QUERIES[kind])
        async for row in cursor:
            yield row
