"""GDPR erasure: everything of the contact goes, a record without personal data stays."""

import uuid

import psycopg

from tests.crm.documents.conftest import AuditedCrm

PERSONAL = "Schmidt-Geheim"


async def _count(url: str, query: str, *params: object) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(query.encode(), params)
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_erasure_removes_everything_and_keeps_a_clean_record(audited: AuditedCrm) -> None:
    admin = await audited.tenant(roles=("user", "admin"))
    company = await admin.company("Firma AG")
    contact = await admin.contact(PERSONAL, emails=["geheim@example.de"])
    other = await admin.contact("Bleibt")
    cid = uuid.UUID(contact["id"])
    # A change, a document, an activity, a task and a deal link on the contact.
    edit = await admin.put(
        f"api/v1/contacts/{cid}", json={"last_name": PERSONAL, "position": "CEO", "version": 1}
    )
    assert edit.status_code == 200, edit.text
    doc = await admin.post(
        f"api/v1/contacts/{cid}/documents", content=b"pass", headers={"X-Filename": "ausweis.pdf"}
    )
    assert doc.status_code == 201
    async with audited.crm.database.tenant_transaction(admin.tenant_id) as conn:
        stage = uuid.uuid4()
        deal = uuid.uuid4()
        await conn.execute(
            "INSERT INTO pipeline_stages (id, name, position) VALUES (%s, 'Neu', 1)", (stage,)
        )
        await conn.execute(
            "INSERT INTO deals (id, title, company_id, stage_id) VALUES (%s, 'Deal', %s, %s)",
            (deal, company["id"], stage),
        )
        await conn.execute(
            "INSERT INTO deal_contacts (deal_id, contact_id) VALUES (%s, %s)", (deal, cid)
        )
        await conn.execute(
            "INSERT INTO activities (id, kind, body, contact_id) VALUES (%s, 'call', %s, %s)",
            (uuid.uuid4(), f"Anruf bei {PERSONAL}", cid),
        )
        await conn.execute(
            "INSERT INTO tasks (id, title, contact_id) VALUES (%s, %s, %s)",
            (uuid.uuid4(), f"{PERSONAL} zurückrufen", cid),
        )
    # Soft-deleted first: erasure reaches it all the same.
    assert (await admin.delete(f"api/v1/contacts/{cid}")).status_code == 204

    user = admin.colleague("bob")
    refused = await user.post(f"api/v1/admin/erasures/contacts/{cid}", json={"reason": "x"})
    assert refused.status_code == 403

    erased = await admin.post(
        f"api/v1/admin/erasures/contacts/{cid}", json={"reason": "Art. 17, Ticket 4711"}
    )
    assert erased.status_code == 201, erased.text
    record = erased.json()
    assert record["record_id"] == str(cid)
    assert record["erased_by"] == str(admin.user_id)

    owner = audited.crm.owner_url
    for table in ("contacts", "activities", "tasks", "documents", "deal_contacts"):
        column = "id" if table == "contacts" else "contact_id"
        assert await _count(owner, f"SELECT count(*) FROM {table} WHERE {column} = %s", cid) == 0
    assert await _count(owner, "SELECT count(*) FROM document_chunks") == 0
    assert await _count(owner, "SELECT count(*) FROM record_history WHERE record_id = %s", cid) == 0
    # Nothing of the person is left anywhere in the database's text.
    for table in ("record_history", "erasures", "activities", "tasks", "contacts"):
        query = f"SELECT count(*) FROM {table} t WHERE t::text ILIKE %s"
        assert await _count(owner, query, f"%{PERSONAL}%") == 0, table
    assert await _count(owner, "SELECT count(*) FROM deals") == 1  # the deal stays
    assert (await admin.get(f"api/v1/contacts/{other['id']}")).status_code == 200

    listed = (await admin.get("api/v1/admin/erasures")).json()
    assert [e["id"] for e in listed] == [record["id"]]
    assert (await user.get("api/v1/admin/erasures")).status_code == 403

    events = await audited.audit_events(admin.tenant_id, "contact.erased")
    assert len(events) == 1
    assert record["id"] in events[0].details_json
    assert PERSONAL not in events[0].details_json

    again = await admin.post(f"api/v1/admin/erasures/contacts/{cid}", json={})
    assert again.status_code == 404


async def test_erasure_is_refused_without_the_audit_log(audited: AuditedCrm) -> None:
    admin = await audited.tenant(roles=("admin",))
    contact = await admin.contact(PERSONAL)
    assert audited.auth.server is not None
    await audited.auth.server.stop(grace=0)
    response = await admin.post(f"api/v1/admin/erasures/contacts/{contact['id']}", json={})
    assert response.status_code == 503
    assert (await admin.get(f"api/v1/contacts/{contact['id']}")).status_code == 200
    assert (await admin.get("api/v1/admin/erasures")).json() == []


async def test_other_tenants_cannot_erase(audited: AuditedCrm) -> None:
    alice = await audited.tenant(roles=("admin",))
    mallory = await audited.tenant(roles=("admin",))
    contact = await alice.contact(PERSONAL)
    response = await mallory.post(f"api/v1/admin/erasures/contacts/{contact['id']}", json={})
    assert response.status_code == 404
    assert (await alice.get(f"api/v1/contacts/{contact['id']}")).status_code == 200
    assert (await mallory.get("api/v1/admin/erasures")).json() == []
