"""Companies and contacts through the JSON API: CRUD, validation, lists, history, versions."""

import uuid

from tests.crm.harness import CrmHarness


async def test_company_and_contact_crud(crm: CrmHarness) -> None:
    alice = crm.tenant()
    company = await alice.company("Müller GmbH", city="München", tags=["kunde", "bayern"])
    assert company["version"] == 1
    contact = await alice.contact(
        "Schmidt",
        first_name="Erika",
        company_id=company["id"],
        emails=["erika@mueller.example"],
        phones=["+49 89 123456"],
        consent=True,
    )
    assert contact["company_name"] == "Müller GmbH"
    assert contact["consent_at"] is not None

    fetched = (await alice.get(f"api/v1/contacts/{contact['id']}")).json()
    assert fetched == contact

    updated = await alice.put(
        f"api/v1/contacts/{contact['id']}",
        json={**_editable(contact), "position": "Einkauf", "version": contact["version"]},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["position"] == "Einkauf"
    assert updated.json()["version"] == 2
    assert updated.json()["consent_at"] == contact["consent_at"]  # consent date kept

    deleted = await alice.delete(f"api/v1/contacts/{contact['id']}")
    assert deleted.status_code == 204
    assert (await alice.get(f"api/v1/contacts/{contact['id']}")).status_code == 404
    trash = (await alice.get("api/v1/contacts?deleted=true")).json()["items"]
    assert [c["id"] for c in trash] == [contact["id"]]
    restored = await alice.post(f"api/v1/contacts/{contact['id']}/restore")
    assert restored.status_code == 200
    assert not restored.json()["deleted"]


def _editable(record: dict[str, object]) -> dict[str, object]:
    read_only = {"id", "version", "created_at", "updated_at", "deleted", "company_name"}
    return {key: value for key, value in record.items() if key not in read_only}


async def test_stale_edit_is_refused(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = alice.colleague()
    company = await alice.company("Alpha AG")
    first = await alice.put(
        f"api/v1/companies/{company['id']}",
        json={**_editable(company), "industry": "Maschinenbau", "version": 1},
    )
    assert first.status_code == 200
    second = await bob.put(
        f"api/v1/companies/{company['id']}",
        json={**_editable(company), "industry": "Handel", "version": 1},
    )
    assert second.status_code == 409
    assert "someone else changed" in second.json()["detail"]
    current = (await alice.get(f"api/v1/companies/{company['id']}")).json()
    assert current["industry"] == "Maschinenbau"


async def test_history_records_who_changed_what(crm: CrmHarness) -> None:
    alice = crm.tenant()
    company = await alice.company("Alpha AG", city="Köln")
    await alice.put(
        f"api/v1/companies/{company['id']}",
        json={**_editable(company), "city": "Bonn", "version": 1},
    )
    changes = (await alice.get(f"api/v1/companies/{company['id']}/history")).json()
    latest = changes[0]
    assert (latest["field"], latest["old_value"], latest["new_value"]) == ("city", "Köln", "Bonn")
    assert latest["changed_by_name"] == "alice"
    assert latest["changed_by"] == str(alice.user_id)
    assert {c["field"] for c in changes} >= {"name", "city"}


async def test_validation_errors_name_the_field(crm: CrmHarness) -> None:
    alice = crm.tenant()
    cases = [
        ("api/v1/contacts", {"first_name": "x"}, "last_name"),
        ("api/v1/contacts", {"last_name": "x", "emails": ["not-an-email"]}, "emails"),
        ("api/v1/contacts", {"last_name": "x", "phones": ["call me"]}, "phones"),
        ("api/v1/contacts", {"last_name": "x", "company_id": str(uuid.uuid4())}, "company_id"),
        ("api/v1/contacts", {"last_name": "x", "unknown": 1}, "unknown"),
        ("api/v1/companies", {"name": ""}, "name"),
        ("api/v1/companies", {"name": "x", "website": "not a site"}, "website"),
        ("api/v1/companies", {"name": "a\x00b"}, "name"),
        ("api/v1/companies", {"name": "x", "tags": ["a,b"]}, "tags"),
    ]
    for path, body, field in cases:
        response = await alice.post(path, json=body)
        assert response.status_code == 422, (body, response.text)
        problem = response.json()
        assert field in problem["errors"], (body, problem)


async def test_malformed_requests_get_problems_not_crashes(crm: CrmHarness) -> None:
    alice = crm.tenant()
    assert (await alice.get("api/v1/contacts/not-a-uuid")).status_code == 422
    assert (await alice.get("api/v1/contacts?limit=100000")).status_code == 422
    assert (await alice.get("api/v1/contacts?cursor=%%%")).status_code == 422
    bad_json = await alice.post(
        "api/v1/contacts", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422
    assert (await alice.get(f"api/v1/contacts/{uuid.uuid4()}")).status_code == 404


async def test_pagination_and_sorting(crm: CrmHarness) -> None:
    alice = crm.tenant()
    names = [f"Firma {i:02d}" for i in range(23)]
    for name in reversed(names):
        await alice.company(name)
    seen: list[str] = []
    cursor = ""
    while True:
        page = (await alice.get(f"api/v1/companies?limit=10&cursor={cursor}")).json()
        seen += [item["name"] for item in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == names
    descending = (await alice.get("api/v1/companies?limit=5&order=desc")).json()
    assert [i["name"] for i in descending["items"]] == names[::-1][:5]
    newest = (await alice.get("api/v1/companies?limit=3&sort=created_at&order=desc")).json()
    assert [i["name"] for i in newest["items"]] == names[:3]


async def test_search_finds_by_name_email_phone_company_tag_and_custom_field(
    crm: CrmHarness,
) -> None:
    alice = crm.tenant()
    admin = alice.colleague("boss", roles=("admin", "user"))
    defined = await admin.post(
        "api/v1/admin/custom-fields",
        json={"entity": "contact", "key": "kundennummer", "label": "Kundennummer", "kind": "text"},
    )
    assert defined.status_code == 201, defined.text
    company = await alice.company("Brauerei Zwickl", tags=["getränke"])
    target = await alice.contact(
        "Huber",
        first_name="Sepp",
        company_id=company["id"],
        emails=["sepp@zwickl.example"],
        phones=["+49 171 5550123"],
        tags=["stammkunde"],
        custom={"kundennummer": "KD-4711"},
    )
    await alice.contact("Meier", first_name="Anna", emails=["anna@else.example"])
    for term in ("huber", "SEPP", "zwickl.example", "5550123", "Brauerei", "stammkunde", "KD-4711"):
        found = (await alice.get(f"api/v1/contacts?q={term}")).json()["items"]
        assert [c["id"] for c in found] == [target["id"]], term
    result = (await alice.get("api/v1/search?q=zwickl")).json()
    assert [c["id"] for c in result["contacts"]] == [target["id"]]
    assert [c["id"] for c in result["companies"]] == [company["id"]]
    # Wildcards typed by the user are just characters.
    assert (await alice.get("api/v1/contacts?q=%25")).json()["items"] == []


async def test_filter_by_tag_and_company(crm: CrmHarness) -> None:
    alice = crm.tenant()
    company = await alice.company("Alpha AG")
    one = await alice.contact("Eins", company_id=company["id"])
    await alice.contact("Zwei", tags=["vip"])
    by_company = (await alice.get(f"api/v1/contacts?company_id={company['id']}")).json()["items"]
    assert [c["id"] for c in by_company] == [one["id"]]
    by_tag = (await alice.get("api/v1/contacts?tag=vip")).json()["items"]
    assert [c["last_name"] for c in by_tag] == ["Zwei"]


async def test_search_results_page_in_name_order(crm: CrmHarness) -> None:
    alice = crm.tenant()
    company = await alice.company("Suchfirma")
    names = [f"Treffer {i:02d}" for i in range(17)]
    for i, name in enumerate(reversed(names)):
        # Some match by their own text, some only through their company's name.
        if i % 3:
            await alice.contact(name, tags=["suchfirma"])
        else:
            await alice.contact(name, company_id=company["id"])
    await alice.contact("Andere Person")
    for order, expected in (("asc", names), ("desc", names[::-1])):
        seen: list[str] = []
        cursor = ""
        while True:
            page = (
                await alice.get(
                    f"api/v1/contacts?q=suchfirma&limit=5&order={order}&cursor={cursor}"
                )
            ).json()
            seen += [item["last_name"] for item in page["items"]]
            if not page["next_cursor"]:
                break
            cursor = page["next_cursor"]
        assert seen == expected, order
    first = (await alice.get("api/v1/contacts?q=treffer&limit=50")).json()["items"][0]
    await alice.delete(f"api/v1/contacts/{first['id']}")
    live = (await alice.get("api/v1/contacts?q=treffer&limit=50")).json()["items"]
    assert first["id"] not in [c["id"] for c in live]
    trash = (await alice.get("api/v1/contacts?q=treffer&deleted=true")).json()["items"]
    assert [c["id"] for c in trash] == [first["id"]]
    companies = (await alice.get("api/v1/companies?q=suchf")).json()["items"]
    assert [c["name"] for c in companies] == ["Suchfirma"]
