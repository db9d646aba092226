"""The admin pages: custom fields, GDPR erasure with its confirm step, the erasure records."""

import re

from tests.crm.documents.conftest import AuditedCrm
from tests.crm.harness import TenantClient
from tests.crm.ui.pages import assert_links_stay_under_prefix, parse


def _csrf(who: TenantClient) -> str:
    return "csrf-" + who.link


async def test_users_who_are_not_admins_are_refused(audited: AuditedCrm) -> None:
    bob = await audited.tenant()
    contact = await bob.contact("Schmidt")
    for path in ("admin", "admin?q=schmidt", f"admin/erase/{contact['id']}"):
        response = await bob.get(path)
        assert response.status_code == 403, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Nicht erlaubt" in response.text
    for path, data in (
        ("admin/custom-fields", {"entity": "contact", "key": "x", "label": "X", "kind": "text"}),
        (f"admin/erase/{contact['id']}", {"reason": "Art. 17"}),
    ):
        assert (await bob.post(path, data={"csrf": _csrf(bob), **data})).status_code == 403
    assert (await bob.get(f"api/v1/contacts/{contact['id']}")).status_code == 200


async def test_admin_page_renders_under_the_prefix(audited: AuditedCrm) -> None:
    admin = await audited.tenant(roles=("user", "admin"))
    contact = await admin.contact("Schmidt", first_name="Erika", emails=["erika@example.de"])
    for path in ("admin", "admin?q=erika", f"admin/erase/{contact['id']}"):
        response = await admin.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        page = assert_links_stay_under_prefix(response, admin)
        assert page.inputs.get("csrf") == _csrf(admin)
    found = await admin.get("admin?q=erika")
    assert admin.path(f"admin/erase/{contact['id']}") in [u for _, _, u in parse(found.text).urls]


async def test_custom_field_add_and_delete_through_the_form(audited: AuditedCrm) -> None:
    admin = await audited.tenant(roles=("user", "admin"))
    form = {
        "csrf": _csrf(admin),
        "entity": "contact",
        "key": "segment",
        "label": "Segment",
        "kind": "choice",
        "choices": "A\r\nB\r\n\r\nA",
    }
    refused = await admin.post("admin/custom-fields", data={**form, "csrf": "forged"})
    assert refused.status_code == 403
    added = await admin.post("admin/custom-fields", data=form)
    assert added.status_code == 303
    assert added.headers["location"] == admin.path("admin?notice=field_added")
    fields = (await admin.get("api/v1/admin/custom-fields")).json()
    assert [(f["key"], f["kind"], f["choices"]) for f in fields] == [
        ("segment", "choice", ["A", "B"])
    ]

    again = await admin.post("admin/custom-fields", data=form)
    assert again.status_code == 409
    assert parse(again.text).errors["key"]
    bad = await admin.post(
        "admin/custom-fields", data={**form, "key": "Not A Key", "kind": "text", "choices": ""}
    )
    assert bad.status_code == 422
    page = parse(bad.text)
    assert page.errors["key"]
    assert page.inputs["label"] == "Segment"
    no_choices = await admin.post(
        "admin/custom-fields", data={**form, "key": "other", "choices": ""}
    )
    assert no_choices.status_code == 422
    assert parse(no_choices.text).errors["choices"]

    listing = await admin.get("admin")
    delete_action = admin.path(f"admin/custom-fields/{fields[0]['id']}/delete")
    assert delete_action in [u for _, _, u in parse(listing.text).urls]
    assert (await admin.post(delete_action.split("/", 3)[3], data={"csrf": "x"})).status_code == 403
    deleted = await admin.post(
        f"admin/custom-fields/{fields[0]['id']}/delete", data={"csrf": _csrf(admin)}
    )
    assert deleted.status_code == 303
    assert (await admin.get("api/v1/admin/custom-fields")).json() == []


async def test_erasure_through_the_form(audited: AuditedCrm) -> None:
    admin = await audited.tenant(roles=("user", "admin"))
    contact = await admin.contact("Schmidt", first_name="Erika")
    keep = await admin.contact("Weber")
    where = f"admin/erase/{contact['id']}"

    confirm = await admin.get(where)
    assert "nicht rückgängig" in confirm.text  # says it cannot be undone
    assert "Schmidt, Erika" in confirm.text

    assert (await admin.post(where, data={"csrf": "forged", "reason": "x"})).status_code == 403
    no_reason = await admin.post(where, data={"csrf": _csrf(admin), "reason": "  "})
    assert no_reason.status_code == 422
    assert parse(no_reason.text).errors["reason"]
    assert (await admin.get(f"api/v1/contacts/{contact['id']}")).status_code == 200

    erased = await admin.post(where, data={"csrf": _csrf(admin), "reason": "Art. 17, Ticket 4711"})
    assert erased.status_code == 303, erased.text
    match = re.fullmatch(
        admin.path(r"admin/erasures/([0-9a-f-]{36})\?done=1"), erased.headers["location"]
    )
    assert match
    record = await admin.get(erased.headers["location"].split("/", 3)[3])
    assert record.status_code == 200
    assert_links_stay_under_prefix(record, admin)
    assert "Der Kontakt wurde gelöscht" in record.text
    assert match.group(1) in record.text
    assert "Art. 17, Ticket 4711" in record.text
    assert "Schmidt" not in record.text.split("<main")[1]  # the record holds no personal data

    assert (await admin.get(f"api/v1/contacts/{contact['id']}")).status_code == 404
    assert (await admin.get(f"api/v1/contacts/{keep['id']}")).status_code == 200
    listing = await admin.get("admin")
    assert match.group(1) in listing.text
    assert "Art. 17, Ticket 4711" in listing.text
    assert len(await audited.audit_events(admin.tenant_id, "contact.erased")) == 1
    assert (
        await admin.post(where, data={"csrf": _csrf(admin), "reason": "again"})
    ).status_code == 404
