"""Small CRM data for the backup tests, written as the superuser (RLS does not bind it)."""

import uuid

import psycopg


def add_company_with_contacts(url: str, tenant: uuid.UUID, contacts: int) -> list[uuid.UUID]:
    company = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(contacts)]
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO companies (id, tenant_id, name) VALUES (%s, %s, %s)",
            (company, tenant, f"Firma {company.hex[:6]}"),
        )
        for contact in ids:
            conn.execute(
                "INSERT INTO contacts (id, tenant_id, last_name, company_id) "
                "VALUES (%s, %s, %s, %s)",
                (contact, tenant, f"Name {contact.hex[:6]}", company),
            )
    return ids


def erase(url: str, tenant: uuid.UUID, contact: uuid.UUID) -> None:
    """What the CRM's erasure leaves: the contact gone, an erasure record kept."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM contacts WHERE id = %s", (contact,))
        conn.execute(
            "INSERT INTO erasures (id, tenant_id, record_type, record_id) "
            "VALUES (%s, %s, 'contact', %s)",
            (uuid.uuid4(), tenant, contact),
        )


def contact_ids(url: str) -> set[uuid.UUID]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM contacts").fetchall()}
