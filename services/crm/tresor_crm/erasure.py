"""GDPR Art. 17: an admin erases a contact with everything attached to it.

Gone: the contact (soft-deleted or not), its activities, tasks, documents with their
chunks, its links to deals, its custom values, and the change history of all of
these. Kept: an erasure record (id, time, who, reason — no personal data), so the
erasure can be applied again after a backup is restored, and `contact.erased` in
the tenant's audit log. The audit event is written before the transaction commits:
if the audit log cannot be reached, nothing is erased.
"""

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from tresor_crm.audit_client import AuditLog
from tresor_crm.db import Conn, Row
from tresor_crm.errors import Forbidden, NotFound
from tresor_crm.identity import Actor
from tresor_crm.storage import admin as store


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # Why, in words that name no person: "Art. 17 request of 2025-03-01, ticket 4711".
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


async def erase_contact(
    conn: Conn,
    actor: Actor,
    audit: AuditLog,
    contact_id: uuid.UUID,
    request: ErasureRequest,
    *,
    client_ip: str | None,
) -> Row:
    if not actor.is_admin:
        raise Forbidden("only a tenant admin may erase")
    if not await store.contact_exists(conn, contact_id):
        raise NotFound("no such contact")
    counts = await store.erase_contact_rows(conn, contact_id)
    erasure = await store.insert_erasure(
        conn,
        erasure_id=uuid.uuid4(),
        contact_id=contact_id,
        actor_id=actor.user_id,
        reason=request.reason,
    )
    await audit.record(
        tenant_id=actor.tenant_id,
        event="contact.erased",
        actor_user_id=actor.user_id,
        client_ip=client_ip,
        details={"erasure_id": str(erasure["id"]), "contact_id": str(contact_id), **counts},
    )
    return erasure


async def list_erasures(conn: Conn) -> list[Row]:
    return await store.erasures(conn)


async def reapply(conn: Conn) -> int:
    """After a restore: erases again every contact that has an erasure record."""
    again = await store.erased_contacts_present(conn)
    for contact_id in again:
        await store.erase_contact_rows(conn, contact_id)
    return len(again)
