"""SQL for pipeline stages and deals. Every call runs on a tenant-bound connection."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from psycopg import errors, sql

from tresor_crm.db import Conn, Row
from tresor_crm.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from tresor_crm.pipeline import DealFields, DealQuery

STAGE_COLUMNS = "id, name, position"
DEAL_COLUMNS = (
    "d.id, d.title, d.company_id, co.name AS company_name, d.value_cents, d.stage_id, "
    "s.name AS stage_name, d.expected_close, d.owner_id, d.outcome, d.outcome_reason, "
    "d.version, d.created_at, d.created_by, d.updated_at, d.updated_by, d.deleted_at, "
    "COALESCE((SELECT array_agg(dc.contact_id ORDER BY dc.contact_id) FROM deal_contacts dc "
    "WHERE dc.deal_id = d.id), ARRAY[]::uuid[]) AS contact_ids"
)
DEAL_SOURCE = (
    "deals d LEFT JOIN companies co ON co.id = d.company_id "
    "JOIN pipeline_stages s ON s.id = d.stage_id"
)
_SORT_COLUMNS = {
    "title": ("lower(d.title)", "::text"),
    "created_at": ("d.created_at", "::timestamptz"),
    "updated_at": ("d.updated_at", "::timestamptz"),
    "expected_close": ("COALESCE(d.expected_close, DATE '9999-12-31')", "::date"),
}


def stage_not_found() -> NotFound:
    return NotFound("no such stage")


async def _one(conn: Conn, query: str | sql.Composed, params: Any) -> Row | None:
    cur = await conn.execute(sql.SQL(query) if isinstance(query, str) else query, params)
    row: Row | None = await cur.fetchone()
    return row


# -- stages ---------------------------------------------------------------------------------


async def lock_stages(conn: Conn) -> None:
    """Serialises changes to one tenant's stages until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('tresor.stages.' || current_tenant(), 0))"
    )


async def stages(conn: Conn) -> list[Row]:
    cur = await conn.execute(
        "SELECT " + STAGE_COLUMNS + " FROM pipeline_stages ORDER BY position, name"
    )
    return await cur.fetchall()


async def insert_stage(conn: Conn, name: str, position: int) -> Row:
    row = await _one(
        conn,
        "INSERT INTO pipeline_stages (id, name, position) VALUES (%s, %s, %s) "
        "RETURNING " + STAGE_COLUMNS,
        (uuid.uuid4(), name, position),
    )
    assert row is not None
    return row


async def rename_stage(conn: Conn, stage_id: uuid.UUID, name: str) -> Row:
    row = await _one(
        conn,
        "UPDATE pipeline_stages SET name = %s WHERE id = %s RETURNING " + STAGE_COLUMNS,
        (name, stage_id),
    )
    if row is None:
        raise stage_not_found()
    return row


async def set_positions(conn: Conn, stage_ids: list[uuid.UUID]) -> None:
    # The (tenant, position) uniqueness is checked at commit, after every row has moved.
    await conn.execute(
        "UPDATE pipeline_stages s SET position = o.ordinality - 1 "
        "FROM unnest(%s::uuid[]) WITH ORDINALITY AS o(id, ordinality) WHERE s.id = o.id",
        (stage_ids,),
    )


async def live_deals_in_stage(conn: Conn, stage_id: uuid.UUID) -> int:
    row = await _one(
        conn,
        "SELECT count(*) AS n FROM deals WHERE stage_id = %s AND deleted_at IS NULL",
        (stage_id,),
    )
    assert row is not None
    return int(row["n"])


async def move_trashed_deals(conn: Conn, from_stage: uuid.UUID, to_stage: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE deals SET stage_id = %s WHERE stage_id = %s AND deleted_at IS NOT NULL",
        (to_stage, from_stage),
    )


async def delete_stage(conn: Conn, stage_id: uuid.UUID) -> None:
    cur = await conn.execute("DELETE FROM pipeline_stages WHERE id = %s", (stage_id,))
    if cur.rowcount == 0:
        raise stage_not_found()


# -- references -----------------------------------------------------------------------------


async def company_exists(conn: Conn, company_id: uuid.UUID) -> bool:
    row = await _one(
        conn, "SELECT 1 FROM companies WHERE id = %s AND deleted_at IS NULL", (company_id,)
    )
    return row is not None


async def existing_contacts(conn: Conn, contact_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    cur = await conn.execute(
        "SELECT id FROM contacts WHERE id = ANY(%s) AND deleted_at IS NULL", (contact_ids,)
    )
    return {row["id"] for row in await cur.fetchall()}


async def contacts_named(conn: Conn, contact_ids: list[uuid.UUID]) -> list[Row]:
    cur = await conn.execute(
        "SELECT id, first_name, last_name FROM contacts WHERE id = ANY(%s) "
        "ORDER BY lower(last_name), lower(first_name)",
        (contact_ids,),
    )
    return await cur.fetchall()


# -- deals ----------------------------------------------------------------------------------


def _deal_values(fields: DealFields) -> dict[str, Any]:
    return {
        "title": fields.title,
        "company_id": fields.company_id,
        "value_cents": fields.value_cents,
        "stage_id": fields.stage_id,
        "expected_close": fields.expected_close,
        "owner_id": fields.owner_id,
        "outcome": fields.outcome,
        "outcome_reason": fields.outcome_reason,
    }


def _reference_error(exc: Exception) -> Exception:
    """Another tenant's company, contact or stage looks exactly like a missing one."""
    if isinstance(exc, errors.ForeignKeyViolation):
        return InvalidInput("a referenced company, contact or stage does not exist")
    return exc


async def _set_contacts(conn: Conn, deal_id: uuid.UUID, contact_ids: list[uuid.UUID]) -> None:
    await conn.execute("DELETE FROM deal_contacts WHERE deal_id = %s", (deal_id,))
    if contact_ids:
        await conn.execute(
            "INSERT INTO deal_contacts (deal_id, contact_id) SELECT %s, unnest(%s::uuid[])",
            (deal_id, contact_ids),
        )


async def insert_deal(conn: Conn, fields: DealFields, actor_id: uuid.UUID) -> Row:
    values = _deal_values(fields)
    columns = list(values)
    query = sql.SQL(
        "INSERT INTO deals (id, created_by, updated_by, {columns}) "
        "VALUES (%(id)s, %(actor)s, %(actor)s, {placeholders}) RETURNING id"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        placeholders=sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
    )
    deal_id = uuid.uuid4()
    try:
        await conn.execute(query, {**values, "id": deal_id, "actor": actor_id})
        await _set_contacts(conn, deal_id, fields.contact_ids)
    except errors.ForeignKeyViolation as exc:
        raise _reference_error(exc) from exc
    return await deal(conn, deal_id)


async def deal(conn: Conn, deal_id: uuid.UUID, *, include_deleted: bool = False) -> Row:
    row = await _one(
        conn, "SELECT " + DEAL_COLUMNS + " FROM " + DEAL_SOURCE + " WHERE d.id = %s", (deal_id,)
    )
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        raise NotFound("no such deal")
    return row


def _stale() -> Conflict:
    return Conflict("someone else changed this deal meanwhile; reload and edit again")


async def update_deal(
    conn: Conn, deal_id: uuid.UUID, version: int, fields: DealFields, actor_id: uuid.UUID
) -> Row:
    values = _deal_values(fields)
    query = sql.SQL(
        "UPDATE deals SET {assignments}, version = version + 1, updated_at = now(), "
        "updated_by = %(actor)s WHERE id = %(id)s AND version = %(version)s "
        "AND deleted_at IS NULL RETURNING id"
    ).format(
        assignments=sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values
        )
    )
    try:
        row = await _one(
            conn, query, {**values, "id": deal_id, "version": version, "actor": actor_id}
        )
        if row is None:
            await deal(conn, deal_id)  # NotFound if it is gone
            raise _stale()
        await _set_contacts(conn, deal_id, fields.contact_ids)
    except errors.ForeignKeyViolation as exc:
        raise _reference_error(exc) from exc
    return await deal(conn, deal_id)


async def move_deal(
    conn: Conn, deal_id: uuid.UUID, version: int, stage_id: uuid.UUID, actor_id: uuid.UUID
) -> Row:
    try:
        row = await _one(
            conn,
            "UPDATE deals SET stage_id = %s, version = version + 1, updated_at = now(), "
            "updated_by = %s WHERE id = %s AND version = %s AND deleted_at IS NULL RETURNING id",
            (stage_id, actor_id, deal_id, version),
        )
    except errors.ForeignKeyViolation as exc:
        raise _reference_error(exc) from exc
    if row is None:
        await deal(conn, deal_id)
        raise _stale()
    return await deal(conn, deal_id)


async def set_deal_deleted(conn: Conn, deal_id: uuid.UUID, deleted: bool) -> Row:
    cur = await conn.execute(
        "UPDATE deals SET deleted_at = CASE WHEN %s THEN now() END, version = version + 1, "
        "updated_at = now() WHERE id = %s",
        (deleted, deal_id),
    )
    if cur.rowcount == 0:
        raise NotFound("no such deal")
    return await deal(conn, deal_id, include_deleted=True)


def _conditions(query: DealQuery, params: dict[str, Any]) -> list[sql.Composable]:
    conditions: list[sql.Composable] = [
        sql.SQL("d.deleted_at IS NOT NULL" if query.deleted else "d.deleted_at IS NULL")
    ]
    if query.search:
        conditions.append(
            sql.SQL("(lower(d.title) LIKE %(pattern)s OR lower(co.name) LIKE %(pattern)s)")
        )
        params["pattern"] = "%" + _like_escape(query.search.lower()) + "%"
    for name in ("stage_id", "outcome", "company_id", "owner_id"):
        value = getattr(query, name)
        if value is not None:
            conditions.append(sql.SQL(f"d.{name} = %({name})s"))
            params[name] = value
    if query.contact_id is not None:
        conditions.append(
            sql.SQL("d.id IN (SELECT deal_id FROM deal_contacts WHERE contact_id = %(contact_id)s)")
        )
        params["contact_id"] = query.contact_id
    return conditions


async def list_deals(conn: Conn, query: DealQuery) -> list[Row]:
    """One page, ordered by the sort key and then the id, after the cursor's row."""
    params: dict[str, Any] = {"limit": query.limit}
    conditions = _conditions(query, params)
    sort, cast = _SORT_COLUMNS[query.sort]
    direction = "DESC" if query.descending else "ASC"
    if query.after is not None:
        comparison = "<" if query.descending else ">"
        conditions.append(
            sql.SQL(f"({sort}, d.id) {comparison} (%(after_value)s{cast}, %(after_id)s::uuid)")
        )
        params["after_value"], params["after_id"] = query.after
    statement = sql.SQL(
        f"SELECT {DEAL_COLUMNS}, {sort} AS sort_value FROM {DEAL_SOURCE} WHERE "
        + "{conditions}"
        + f" ORDER BY {sort} {direction}, d.id {direction} LIMIT %(limit)s"
    ).format(conditions=sql.SQL(" AND ").join(conditions))
    cur = await conn.execute(statement, params)
    return await cur.fetchall()


async def board_deals(conn: Conn, query: DealQuery) -> list[Row]:
    """Up to `query.limit` deals per stage, the most recently changed first."""
    params: dict[str, Any] = {"limit": query.limit}
    conditions = _conditions(query, params)
    statement = sql.SQL(
        f"SELECT * FROM (SELECT {DEAL_COLUMNS}, row_number() OVER "
        f"(PARTITION BY d.stage_id ORDER BY d.updated_at DESC, d.id) AS rank "
        f"FROM {DEAL_SOURCE} WHERE "
        + "{conditions}"
        + ") ranked WHERE rank <= %(limit)s ORDER BY updated_at DESC, id"
    ).format(conditions=sql.SQL(" AND ").join(conditions))
    cur = await conn.execute(statement, params)
    return await cur.fetchall()


async def stage_sums(conn: Conn, query: DealQuery) -> dict[uuid.UUID, tuple[int, int]]:
    """stage id -> (number of deals, their value in cents), for the deals `query` selects."""
    params: dict[str, Any] = {}
    conditions = _conditions(query, params)
    statement = sql.SQL(
        f"SELECT d.stage_id, count(*) AS n, COALESCE(sum(d.value_cents), 0) AS cents "
        f"FROM {DEAL_SOURCE} WHERE " + "{conditions}" + " GROUP BY d.stage_id"
    ).format(conditions=sql.SQL(" AND ").join(conditions))
    cur = await conn.execute(statement, params)
    return {row["stage_id"]: (int(row["n"]), int(row["cents"])) for row in await cur.fetchall()}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
