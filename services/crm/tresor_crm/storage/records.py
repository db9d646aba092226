"""SQL for companies and contacts. Every call runs on a tenant-bound connection."""

import uuid
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from tresor_crm.db import Conn, Row
from tresor_crm.errors import Conflict, InvalidInput, NotFound
from tresor_crm.records import CompanyFields, ContactFields, ListQuery

COMPANY_COLUMNS = (
    "id, name, website, industry, street, postal_code, city, country, phone, tags, custom, "
    "version, created_at, created_by, updated_at, updated_by, deleted_at"
)
CONTACT_COLUMNS = (
    "c.id, c.first_name, c.last_name, c.company_id, co.name AS company_name, c.emails, c.phones, "
    "c.position, c.street, c.postal_code, c.city, c.country, c.tags, c.owner_id, c.consent, "
    "c.consent_at, c.custom, c.version, c.created_at, c.created_by, c.updated_at, c.updated_by, "
    "c.deleted_at"
)
_SORT_COLUMNS = {
    ("company", "name"): "lower(name)",
    ("company", "created_at"): "created_at",
    ("company", "updated_at"): "updated_at",
    ("contact", "name"): "lower(c.last_name || ' ' || c.first_name)",
    ("contact", "created_at"): "c.created_at",
    ("contact", "updated_at"): "c.updated_at",
}


def _company_values(fields: CompanyFields) -> dict[str, Any]:
    values = fields.model_dump()
    values["custom"] = Jsonb(values["custom"])
    return values


def _contact_values(fields: ContactFields) -> dict[str, Any]:
    values = fields.model_dump()
    values["custom"] = Jsonb(values["custom"])
    return values


async def _one(conn: Conn, query: sql.SQL | sql.Composed, params: Any) -> Row | None:
    cur = await conn.execute(query, params)
    row: Row | None = await cur.fetchone()
    return row


# -- companies ------------------------------------------------------------------------------


async def insert_company(conn: Conn, fields: CompanyFields, actor_id: uuid.UUID) -> Row:
    values = _company_values(fields)
    columns = list(values)
    query = sql.SQL(
        "INSERT INTO companies (id, created_by, updated_by, {columns}) "
        "VALUES (%(id)s, %(actor)s, %(actor)s, {placeholders}) RETURNING " + COMPANY_COLUMNS
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        placeholders=sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
    )
    row = await _one(conn, query, {**values, "id": uuid.uuid4(), "actor": actor_id})
    assert row is not None
    return row


async def company(conn: Conn, company_id: uuid.UUID, *, include_deleted: bool = False) -> Row:
    row = await _one(
        conn,
        sql.SQL("SELECT " + COMPANY_COLUMNS + " FROM companies WHERE id = %s"),
        (company_id,),
    )
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        raise NotFound("no such company")
    return row


async def update_company(
    conn: Conn, company_id: uuid.UUID, version: int, fields: CompanyFields, actor_id: uuid.UUID
) -> Row:
    values = _company_values(fields)
    query = sql.SQL(
        "UPDATE companies SET {assignments}, version = version + 1, updated_at = now(), "
        "updated_by = %(actor)s WHERE id = %(id)s AND version = %(version)s "
        "AND deleted_at IS NULL RETURNING " + COMPANY_COLUMNS
    ).format(
        assignments=sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values
        )
    )
    row = await _one(
        conn, query, {**values, "id": company_id, "version": version, "actor": actor_id}
    )
    if row is None:
        await company(conn, company_id)  # NotFound if it is gone
        raise Conflict("someone else changed this company meanwhile; reload and edit again")
    return row


async def set_company_deleted(conn: Conn, company_id: uuid.UUID, deleted: bool) -> None:
    cur = await conn.execute(
        "UPDATE companies SET deleted_at = CASE WHEN %s THEN now() END, version = version + 1 "
        "WHERE id = %s",
        (deleted, company_id),
    )
    if cur.rowcount == 0:
        raise NotFound("no such company")


async def list_companies(conn: Conn, query: ListQuery) -> list[Row]:
    conditions: list[sql.Composable] = [
        sql.SQL("deleted_at IS NOT NULL" if query.deleted else "deleted_at IS NULL")
    ]
    params: dict[str, Any] = {"limit": query.limit}
    if _paged_search(query):
        return await _search_page(conn, "company", "companies", COMPANY_COLUMNS, "id", query)
    if query.search:
        conditions.append(sql.SQL("id IN (SELECT search_ids('company', %(pattern)s))"))
        params["pattern"] = "%" + _like_escape(query.search.lower()) + "%"
    if query.tag:
        conditions.append(sql.SQL("%(tag)s = ANY(tags)"))
        params["tag"] = query.tag
    return await _keyset(conn, "company", "companies", COMPANY_COLUMNS, conditions, params, query)


# -- contacts -------------------------------------------------------------------------------


async def insert_contact(conn: Conn, fields: ContactFields, actor_id: uuid.UUID) -> Row:
    values = _contact_values(fields)
    columns = list(values)
    query = sql.SQL(
        "INSERT INTO contacts (id, created_by, updated_by, {columns}) "
        "VALUES (%(id)s, %(actor)s, %(actor)s, {placeholders}) RETURNING id"
    ).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        placeholders=sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
    )
    try:
        row = await _one(conn, query, {**values, "id": uuid.uuid4(), "actor": actor_id})
    except Exception as exc:
        raise _foreign_key(exc) from exc
    assert row is not None
    return await contact(conn, row["id"])


async def contact(conn: Conn, contact_id: uuid.UUID, *, include_deleted: bool = False) -> Row:
    row = await _one(
        conn,
        sql.SQL(
            "SELECT " + CONTACT_COLUMNS + " FROM contacts c "
            "LEFT JOIN companies co ON co.id = c.company_id WHERE c.id = %s"
        ),
        (contact_id,),
    )
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        raise NotFound("no such contact")
    return row


async def update_contact(
    conn: Conn, contact_id: uuid.UUID, version: int, fields: ContactFields, actor_id: uuid.UUID
) -> Row:
    values = _contact_values(fields)
    query = sql.SQL(
        "UPDATE contacts SET {assignments}, version = version + 1, updated_at = now(), "
        "updated_by = %(actor)s WHERE id = %(id)s AND version = %(version)s "
        "AND deleted_at IS NULL RETURNING id"
    ).format(
        assignments=sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values
        )
    )
    try:
        row = await _one(
            conn, query, {**values, "id": contact_id, "version": version, "actor": actor_id}
        )
    except Exception as exc:
        raise _foreign_key(exc) from exc
    if row is None:
        await contact(conn, contact_id)
        raise Conflict("someone else changed this contact meanwhile; reload and edit again")
    return await contact(conn, contact_id)


async def set_contact_deleted(conn: Conn, contact_id: uuid.UUID, deleted: bool) -> None:
    cur = await conn.execute(
        "UPDATE contacts SET deleted_at = CASE WHEN %s THEN now() END, version = version + 1 "
        "WHERE id = %s",
        (deleted, contact_id),
    )
    if cur.rowcount == 0:
        raise NotFound("no such contact")


async def list_contacts(conn: Conn, query: ListQuery) -> list[Row]:
    conditions: list[sql.Composable] = [
        sql.SQL("c.deleted_at IS NOT NULL" if query.deleted else "c.deleted_at IS NULL")
    ]
    params: dict[str, Any] = {"limit": query.limit}
    if _paged_search(query):
        return await _search_page(
            conn,
            "contact",
            "contacts c LEFT JOIN companies co ON co.id = c.company_id",
            CONTACT_COLUMNS,
            "c.id",
            query,
        )
    if query.search:
        # Name, e-mail, phone, tag, position, city, custom fields, or the company's name.
        conditions.append(sql.SQL("c.id IN (SELECT search_ids('contact', %(pattern)s))"))
        params["pattern"] = "%" + _like_escape(query.search.lower()) + "%"
    if query.tag:
        conditions.append(sql.SQL("%(tag)s = ANY(c.tags)"))
        params["tag"] = query.tag
    if query.company_id:
        conditions.append(sql.SQL("c.company_id = %(company_id)s"))
        params["company_id"] = query.company_id
    return await _keyset(
        conn,
        "contact",
        "contacts c LEFT JOIN companies co ON co.id = c.company_id",
        CONTACT_COLUMNS,
        conditions,
        params,
        query,
    )


# -- shared ---------------------------------------------------------------------------------


def _paged_search(query: ListQuery) -> bool:
    """A plain search in name order: the search index hands out the page itself."""
    return bool(query.search) and query.sort == "name" and not query.tag and not query.company_id


async def _search_page(
    conn: Conn, kind: str, source: str, columns: str, id_column: str, query: ListQuery
) -> list[Row]:
    after_key, after_id = query.after if query.after else (None, None)
    direction = "DESC" if query.descending else "ASC"
    deleted = "IS NOT NULL" if query.deleted else "IS NULL"
    alias = "c." if kind == "contact" else ""
    statement = sql.SQL(
        f"SELECT {columns}, p.sort_key AS sort_value FROM search_page("
        "%(kind)s, %(pattern)s, %(deleted)s, %(descending)s, %(after_key)s, "
        "%(after_id)s::uuid, %(limit)s) p "
        f"JOIN {source} ON {id_column} = p.record_id WHERE {alias}deleted_at {deleted} "
        f"ORDER BY p.sort_key {direction}, p.record_id {direction}"
    )
    cur = await conn.execute(
        statement,
        {
            "kind": kind,
            "pattern": "%" + _like_escape(query.search.lower()) + "%",
            "deleted": query.deleted,
            "descending": query.descending,
            "after_key": after_key,
            "after_id": after_id,
            "limit": query.limit,
        },
    )
    return await cur.fetchall()


async def _keyset(
    conn: Conn,
    kind: str,
    source: str,
    columns: str,
    conditions: list[sql.Composable],
    params: dict[str, Any],
    query: ListQuery,
) -> list[Row]:
    """One page, ordered by the sort key and then the id, after the cursor's row."""
    sort = _SORT_COLUMNS[(kind, query.sort)]
    id_column = "c.id" if kind == "contact" else "id"
    direction = "DESC" if query.descending else "ASC"
    if query.after is not None:
        comparison = "<" if query.descending else ">"
        cast = "::text" if query.sort == "name" else "::timestamptz"
        conditions.append(
            sql.SQL(
                f"({sort}, {id_column}) {comparison} (%(after_value)s{cast}, %(after_id)s::uuid)"
            )
        )
        params["after_value"], params["after_id"] = query.after
    statement = sql.SQL(
        f"SELECT {columns}, {sort} AS sort_value FROM {source} WHERE "
        + "{conditions}"
        + f" ORDER BY {sort} {direction}, {id_column} {direction} LIMIT %(limit)s"
    ).format(conditions=sql.SQL(" AND ").join(conditions))
    cur = await conn.execute(statement, params)
    return await cur.fetchall()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _foreign_key(exc: Exception) -> Exception:
    """A company of another tenant (or none) looks exactly like a missing one."""
    from psycopg import errors

    if isinstance(exc, errors.ForeignKeyViolation):
        return InvalidInput("company_id: no such company", {"company_id": "no such company"})
    return exc
