"""SQL for documents and their chunks. Every call runs on a tenant-bound connection."""

import uuid
from collections.abc import AsyncIterator
from typing import Literal

from psycopg import sql

from tresor_crm.db import Conn, Row
from tresor_crm.errors import NotFound

OwnerKind = Literal["contact", "company", "deal"]

_OWNER_TABLE = {"contact": "contacts", "company": "companies", "deal": "deals"}
DOCUMENT_COLUMNS = (
    "id, filename, content_type, size_bytes, sha256, contact_id, company_id, deal_id, "
    "uploaded_by, uploaded_at"
)


async def owner_exists(conn: Conn, kind: OwnerKind, owner_id: uuid.UUID) -> None:
    query = sql.SQL("SELECT 1 FROM {} WHERE id = %s AND deleted_at IS NULL").format(
        sql.Identifier(_OWNER_TABLE[kind])
    )
    cur = await conn.execute(query, (owner_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"no such {kind}")


async def insert_document(
    conn: Conn,
    *,
    document_id: uuid.UUID,
    kind: OwnerKind,
    owner_id: uuid.UUID,
    filename: str,
    content_type: str,
    uploaded_by: uuid.UUID,
) -> None:
    query = sql.SQL(
        "INSERT INTO documents (id, filename, content_type, {owner}, uploaded_by) "
        "VALUES (%s, %s, %s, %s, %s)"
    ).format(owner=sql.Identifier(f"{kind}_id"))
    await conn.execute(query, (document_id, filename, content_type, owner_id, uploaded_by))


async def insert_chunk(conn: Conn, *, document_id: uuid.UUID, seq: int, data: bytes) -> None:
    await conn.execute(
        "INSERT INTO document_chunks (document_id, seq, data) VALUES (%s, %s, %s)",
        (document_id, seq, data),
    )


async def complete_document(
    conn: Conn, *, document_id: uuid.UUID, size_bytes: int, sha256: str
) -> Row:
    cur = await conn.execute(
        "UPDATE documents SET size_bytes = %s, sha256 = %s, complete = true WHERE id = %s "
        "RETURNING " + DOCUMENT_COLUMNS,
        (size_bytes, sha256, document_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def document(conn: Conn, document_id: uuid.UUID) -> Row:
    cur = await conn.execute(
        "SELECT " + DOCUMENT_COLUMNS + " FROM documents WHERE id = %s AND complete",
        (document_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound("no such document")
    return row


async def documents_of(conn: Conn, kind: OwnerKind, owner_id: uuid.UUID) -> list[Row]:
    query = sql.SQL(
        "SELECT " + DOCUMENT_COLUMNS + " FROM documents WHERE {owner} = %s AND complete "
        "ORDER BY uploaded_at DESC, id"
    ).format(owner=sql.Identifier(f"{kind}_id"))
    cur = await conn.execute(query, (owner_id,))
    return await cur.fetchall()


async def delete_document(conn: Conn, document_id: uuid.UUID) -> None:
    cur = await conn.execute("DELETE FROM documents WHERE id = %s", (document_id,))
    if cur.rowcount == 0:
        raise NotFound("no such document")


async def delete_incomplete(conn: Conn) -> int:
    """Leftovers of uploads that never finished (none are committed today; kept as a sweep)."""
    cur = await conn.execute(
        "DELETE FROM documents WHERE NOT complete AND uploaded_at < now() - interval '1 hour'"
    )
    return cur.rowcount


async def chunks(conn: Conn, document_id: uuid.UUID) -> AsyncIterator[bytes]:
    """The document's bytes in order, a few chunks at a time, through a server-side cursor.

    The cursor reads one snapshot, so a delete meanwhile cannot cut the file short.
    """
    async with conn.cursor(name=f"doc_{document_id.hex}") as cur:
        cur.itersize = 4
        await cur.execute(
            "SELECT data FROM document_chunks WHERE document_id = %s ORDER BY seq",
            (document_id,),
        )
        async for row in cur:
            yield bytes(row["data"])
