"""Flows on companies and contacts: write, record the history, hand back the row."""

import uuid
from typing import Any

from tresor_crm import custom_fields, history
from tresor_crm.db import Conn, Row
from tresor_crm.identity import Actor
from tresor_crm.records import CompanyFields, ContactFields, ListQuery
from tresor_crm.storage import records as store


def _fields_of(row: Row, model: type[CompanyFields] | type[ContactFields]) -> dict[str, Any]:
    return {name: row[name] for name in model.model_fields if name in row}


async def _checked_company(conn: Conn, fields: CompanyFields) -> CompanyFields:
    custom = await custom_fields.check_custom(conn, "company", dict(fields.custom))
    return fields.model_copy(update={"custom": custom})


async def _checked_contact(conn: Conn, fields: ContactFields) -> ContactFields:
    custom = await custom_fields.check_custom(conn, "contact", dict(fields.custom))
    return fields.model_copy(update={"custom": custom})


async def create_company(conn: Conn, actor: Actor, fields: CompanyFields) -> Row:
    fields = await _checked_company(conn, fields)
    row = await store.insert_company(conn, fields, actor.user_id)
    await history.record(
        conn,
        record_type="company",
        record_id=row["id"],
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed=history.changes({}, fields.model_dump()),
    )
    return row


async def update_company(
    conn: Conn, actor: Actor, company_id: uuid.UUID, version: int, fields: CompanyFields
) -> Row:
    fields = await _checked_company(conn, fields)
    before = await store.company(conn, company_id)
    row = await store.update_company(conn, company_id, version, fields, actor.user_id)
    await history.record(
        conn,
        record_type="company",
        record_id=company_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed=history.changes(_fields_of(before, CompanyFields), fields.model_dump()),
    )
    return row


async def set_company_deleted(
    conn: Conn, actor: Actor, company_id: uuid.UUID, deleted: bool
) -> None:
    await store.company(conn, company_id, include_deleted=True)
    await store.set_company_deleted(conn, company_id, deleted)
    await history.record(
        conn,
        record_type="company",
        record_id=company_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed={"deleted": (not deleted, deleted)},
    )


async def create_contact(conn: Conn, actor: Actor, fields: ContactFields) -> Row:
    fields = (await _checked_contact(conn, fields)).with_consent_date(None)
    row = await store.insert_contact(conn, fields, actor.user_id)
    await history.record(
        conn,
        record_type="contact",
        record_id=row["id"],
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed=history.changes({}, fields.model_dump()),
    )
    return row


async def update_contact(
    conn: Conn, actor: Actor, contact_id: uuid.UUID, version: int, fields: ContactFields
) -> Row:
    before = await store.contact(conn, contact_id)
    previous = ContactFields.model_validate(_fields_of(before, ContactFields))
    fields = (await _checked_contact(conn, fields)).with_consent_date(previous)
    row = await store.update_contact(conn, contact_id, version, fields, actor.user_id)
    await history.record(
        conn,
        record_type="contact",
        record_id=contact_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed=history.changes(_fields_of(before, ContactFields), fields.model_dump()),
    )
    return row


async def set_contact_deleted(
    conn: Conn, actor: Actor, contact_id: uuid.UUID, deleted: bool
) -> None:
    await store.contact(conn, contact_id, include_deleted=True)
    await store.set_contact_deleted(conn, contact_id, deleted)
    await history.record(
        conn,
        record_type="contact",
        record_id=contact_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed={"deleted": (not deleted, deleted)},
    )


async def list_companies(conn: Conn, query: ListQuery) -> list[Row]:
    return await store.list_companies(conn, query)


async def list_contacts(conn: Conn, query: ListQuery) -> list[Row]:
    return await store.list_contacts(conn, query)
