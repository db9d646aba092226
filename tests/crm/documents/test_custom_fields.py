"""Custom fields: admins define them; values are checked, normalised and searchable."""

import uuid

import pytest

from tests.crm.documents.conftest import AuditedCrm
from tresor_crm.custom_fields import check_custom
from tresor_crm.errors import InvalidInput


async def test_definitions_and_value_checks(audited: AuditedCrm) -> None:
    admin = await audited.tenant(roles=("admin",))
    user = admin.colleague("bob")
    fields = [
        {"entity": "contact", "key": "kundennummer", "label": "Kundennummer", "kind": "text"},
        {"entity": "contact", "key": "umsatz", "label": "Umsatz", "kind": "number"},
        {"entity": "contact", "key": "geburtstag", "label": "Geburtstag", "kind": "date"},
        {
            "entity": "contact",
            "key": "segment",
            "label": "Segment",
            "kind": "choice",
            "choices": ["A", "B", "C"],
        },
    ]
    for body in fields:
        created = await admin.post("api/v1/admin/custom-fields", json=body)
        assert created.status_code == 201, created.text
    duplicate = await admin.post("api/v1/admin/custom-fields", json=fields[0])
    assert duplicate.status_code == 409
    bad = await admin.post(
        "api/v1/admin/custom-fields",
        json={"entity": "contact", "key": "Bad Key", "label": "x", "kind": "text"},
    )
    assert bad.status_code == 422
    no_choices = await admin.post(
        "api/v1/admin/custom-fields",
        json={"entity": "company", "key": "typ", "label": "Typ", "kind": "choice"},
    )
    assert no_choices.status_code == 422
    assert (await user.post("api/v1/admin/custom-fields", json=fields[0])).status_code == 403
    listed = (await admin.get("api/v1/admin/custom-fields?entity=contact")).json()
    assert [f["key"] for f in listed] == ["kundennummer", "umsatz", "geburtstag", "segment"]

    async with audited.crm.database.tenant_transaction(admin.tenant_id) as conn:
        good = await check_custom(
            conn,
            "contact",
            {
                "kundennummer": " K-4711 ",
                "umsatz": "1.234,50",
                "geburtstag": "01.03.1980",
                "segment": "B",
            },
        )
        assert good == {
            "kundennummer": "K-4711",
            "umsatz": 1234.5,
            "geburtstag": "1980-03-01",
            "segment": "B",
        }
        assert await check_custom(conn, "contact", {"umsatz": 12, "segment": ""}) == {"umsatz": 12}
        with pytest.raises(InvalidInput) as caught:
            await check_custom(
                conn,
                "contact",
                {"umsatz": "viel", "geburtstag": "31.02.2020", "segment": "Z", "unbekannt": "x"},
            )
        assert set(caught.value.fields) == {
            "custom.umsatz",
            "custom.geburtstag",
            "custom.segment",
            "custom.unbekannt",
        }
        with pytest.raises(InvalidInput):
            await check_custom(conn, "company", {"kundennummer": "x"})  # a contact field only

    # Through the CSV import, which checks custom values; then found by the search.
    imported = await admin.post(
        "api/v1/import/contacts",
        content=b"last_name;custom.kundennummer;custom.segment\nMeier;K-9001;A\nKrause;K-9002;Q\n",
    )
    report = imported.json()
    assert report["imported"] == 1
    assert report["problems"][0]["line"] == 3
    found = (await admin.get("api/v1/contacts?q=k-9001")).json()["items"]
    assert [c["last_name"] for c in found] == ["Meier"]
    assert found[0]["custom"] == {"kundennummer": "K-9001", "segment": "A"}

    field_id = listed[0]["id"]
    assert (await admin.delete(f"api/v1/admin/custom-fields/{field_id}")).status_code == 204
    assert (await admin.delete(f"api/v1/admin/custom-fields/{field_id}")).status_code == 404
    other = await audited.tenant(roles=("admin",))
    assert (await other.get("api/v1/admin/custom-fields")).json() == []
    missing = await other.delete(f"api/v1/admin/custom-fields/{listed[1]['id']}")
    assert missing.status_code == 404
    assert (await other.delete(f"api/v1/admin/custom-fields/{uuid.uuid4()}")).status_code == 404
