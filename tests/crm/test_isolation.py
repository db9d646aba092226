"""Tenant isolation: tenant A never sees, changes or even detects tenant B's rows."""

import uuid

import psycopg
import pytest

from tests.crm.harness import CrmHarness, TenantClient


async def _same_data(client: TenantClient) -> dict[str, dict[str, object]]:
    company = await client.company("Gleiche GmbH", tags=["same"])
    contact = await client.contact(
        "Gleich", company_id=company["id"], emails=["same@example.org"], tags=["same"]
    )
    return {"company": company, "contact": contact}


async def test_two_tenants_with_the_same_data_see_only_their_own(crm: CrmHarness) -> None:
    a, b = crm.tenant(), crm.tenant()
    mine, theirs = await _same_data(a), await _same_data(b)

    for path in (
        "api/v1/contacts",
        "api/v1/companies",
        "api/v1/contacts?q=gleich",
        "api/v1/contacts?tag=same",
        "api/v1/companies?q=gleiche",
        "api/v1/contacts?deleted=true",
    ):
        items = (await a.get(path)).json()["items"]
        assert str(theirs["contact"]["id"]) not in str(items), path
        assert str(theirs["company"]["id"]) not in str(items), path
    search = (await a.get("api/v1/search?q=gleich")).json()
    assert [c["id"] for c in search["contacts"]] == [mine["contact"]["id"]]
    assert [c["id"] for c in search["companies"]] == [mine["company"]["id"]]


async def test_guessed_ids_of_another_tenant_find_nothing(crm: CrmHarness) -> None:
    a, b = crm.tenant(), crm.tenant()
    theirs = await _same_data(b)
    contact_id, company_id = theirs["contact"]["id"], theirs["company"]["id"]
    assert (await a.get(f"api/v1/contacts/{contact_id}")).status_code == 404
    assert (await a.get(f"api/v1/companies/{company_id}")).status_code == 404
    assert (await a.get(f"api/v1/contacts/{contact_id}/history")).status_code == 404
    assert (
        await a.put(f"api/v1/companies/{company_id}", json={"name": "x", "version": 1})
    ).status_code == 404
    assert (await a.delete(f"api/v1/contacts/{contact_id}")).status_code == 404
    assert (await a.post(f"api/v1/contacts/{contact_id}/restore")).status_code == 404
    # Nor can A hang a contact on B's company.
    response = await a.post("api/v1/contacts", json={"last_name": "x", "company_id": company_id})
    assert response.status_code == 422
    # B's data is untouched.
    assert (await b.get(f"api/v1/contacts/{contact_id}")).json()["last_name"] == "Gleich"


async def test_a_query_without_a_tenant_filter_sees_only_its_tenant(crm: CrmHarness) -> None:
    a, b = crm.tenant(), crm.tenant()
    await _same_data(a)
    await _same_data(b)
    async with crm.database.tenant_transaction(a.tenant_id) as conn:
        for table in ("contacts", "companies", "record_history"):
            cur = await conn.execute(f"SELECT DISTINCT tenant_id FROM {table}".encode())
            assert [row["tenant_id"] for row in await cur.fetchall()] == [a.tenant_id], table
        # Writes are bound too: a row for another tenant is refused.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(
                "INSERT INTO companies (id, tenant_id, name) VALUES (%s, %s, 'x')",
                (uuid.uuid4(), b.tenant_id),
            )
    async with crm.database.tenant_transaction(a.tenant_id) as conn:
        cur = await conn.execute("UPDATE contacts SET last_name = 'overwritten'")
        assert cur.rowcount == 1  # A's one contact, not B's
    async with crm.database.tenant_transaction(b.tenant_id) as conn:
        cur = await conn.execute("SELECT last_name FROM contacts")
        assert [row["last_name"] for row in await cur.fetchall()] == ["Gleich"]


async def test_without_a_tenant_nothing_is_visible(crm: CrmHarness) -> None:
    await _same_data(crm.tenant())
    async with await psycopg.AsyncConnection.connect(crm.runtime_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM contacts")
        assert await cur.fetchone() == (0,)


def test_the_service_role_cannot_bypass_row_security(crm_database: tuple[str, str]) -> None:
    _, runtime = crm_database
    with psycopg.connect(runtime) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (False, False)
        forced = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname = 'contacts' AND relforcerowsecurity"
        ).fetchone()
        assert forced == (1,)


async def test_the_search_index_is_read_only_through_the_tenant_bound_function(
    crm: CrmHarness,
) -> None:
    a, b = crm.tenant(), crm.tenant()
    mine, theirs = await _same_data(a), await _same_data(b)
    async with crm.database.tenant_transaction(a.tenant_id) as conn:
        cur = await conn.execute("SELECT search_ids('contact', '%gleich%')")
        assert [row["search_ids"] for row in await cur.fetchall()] == [
            uuid.UUID(str(mine["contact"]["id"]))
        ]
        cur = await conn.execute("SELECT search_ids('company', '%')")
        found = [row["search_ids"] for row in await cur.fetchall()]
        assert uuid.UUID(str(theirs["company"]["id"])) not in found
    async with await psycopg.AsyncConnection.connect(crm.runtime_url) as plain:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await plain.execute("SELECT * FROM search_entries")
    async with await psycopg.AsyncConnection.connect(crm.runtime_url) as plain:
        counted = await plain.execute("SELECT count(*) FROM search_ids('contact', '%')")
        assert await counted.fetchone() == (0,), "no tenant on the connection: nothing found"


async def test_the_search_index_follows_edits_and_deletions(crm: CrmHarness) -> None:
    alice = crm.tenant()
    contact = await alice.contact("Vorher")
    await alice.put(
        f"api/v1/contacts/{contact['id']}",
        json={"last_name": "Nachher", "version": contact["version"]},
    )
    assert (await alice.get("api/v1/contacts?q=vorher")).json()["items"] == []
    assert len((await alice.get("api/v1/contacts?q=nachher")).json()["items"]) == 1
    async with crm.database.tenant_transaction(alice.tenant_id) as conn:
        await conn.execute("DELETE FROM contacts")
    async with await psycopg.AsyncConnection.connect(crm.owner_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM search_entries WHERE kind = 'contact'")
        assert await cur.fetchone() == (0,)
