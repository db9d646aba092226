"""The web UI for people: pages, forms, CSRF, languages, error pages, links under the prefix."""

import re
import uuid

import httpx

from tests.crm.harness import CrmHarness, TenantClient
from tests.crm.ui.pages import assert_links_stay_under_prefix, parse


def _form(who: TenantClient, **fields: str) -> dict[str, str]:
    return {"csrf": "csrf-" + who.link, **fields}


async def _new_contact(who: TenantClient, **fields: str) -> httpx.Response:
    data = {"last_name": "Schmidt", "first_name": "Erika", **fields}
    return await who.post("contacts", data=_form(who, **data))


def _id_from(response: httpx.Response) -> str:
    match = re.search(
        r"/contacts/([0-9a-f-]{36})|/companies/([0-9a-f-]{36})", response.headers["location"]
    )
    assert match, response.headers["location"]
    return match.group(1) or match.group(2)


async def test_every_page_renders_under_the_prefix(crm: CrmHarness) -> None:
    alice = crm.tenant(roles=("user", "admin"))
    company = await alice.company("Müller GmbH", city="München", tags=["kunde"])
    contact = await alice.contact(
        "Schmidt",
        first_name="Erika",
        company_id=company["id"],
        emails=["erika@mueller.example"],
        phones=["+49 89 123456"],
        tags=["vip"],
    )
    for path in (
        "",
        "contacts",
        "contacts?q=erika&sort=updated_at&order=desc",
        "contacts?deleted=1",
        "contacts/new",
        f"contacts/{contact['id']}",
        f"contacts/{contact['id']}/edit",
        "companies",
        "companies/new",
        f"companies/{company['id']}",
        f"companies/{company['id']}/edit",
    ):
        response = await alice.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        page = assert_links_stay_under_prefix(response, alice)
        assert f"/s/{alice.link}/static/crm.css" in [url for _, _, url in page.urls]
        assert f"/s/{alice.link}/admin" in [url for _, _, url in page.urls]
        assert f"/s/{alice.link}/logout?lang=de" in [url for _, _, url in page.urls]
        assert page.inputs.get("csrf") == "csrf-" + alice.link

    detail = (await alice.get(f"contacts/{contact['id']}")).text
    assert "erika@mueller.example" in detail
    assert "Müller GmbH" in detail
    company_page = (await alice.get(f"companies/{company['id']}")).text
    assert "Schmidt, Erika" in company_page  # its contacts


async def test_users_see_no_admin_link_and_static_files_are_served(crm: CrmHarness) -> None:
    bob = crm.tenant()
    page = parse((await bob.get("")).text)
    assert f"/s/{bob.link}/admin" not in [url for _, _, url in page.urls]
    css = await bob.get("static/crm.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text  # no fonts or images from anywhere
    assert (await bob.get("static/..%2Fweb.py")).status_code == 404
    assert (await bob.get("static/nothing.css")).status_code == 404


async def test_create_search_edit_and_history(crm: CrmHarness) -> None:
    alice = crm.tenant()
    created = await _new_contact(
        alice, emails="erika@example.de\nerika.s@example.de", tags="kunde, bayern", consent="on"
    )
    assert created.status_code == 303
    contact_id = _id_from(created)
    assert created.headers["location"].startswith(f"/s/{alice.link}/contacts/")

    listed = await alice.get("contacts", params={"q": "erika.s@"})
    assert f"/contacts/{contact_id}" in listed.text
    assert "Schmidt, Erika" in listed.text
    by_tag = await alice.get("contacts", params={"tag": "bayern"})
    assert f"/contacts/{contact_id}" in by_tag.text
    assert f"/contacts/{contact_id}" not in (await alice.get("contacts?tag=nope")).text

    form = parse((await alice.get(f"contacts/{contact_id}/edit")).text).inputs
    assert form["version"] == "1"
    edited = await alice.post(
        f"contacts/{contact_id}",
        data=_form(
            alice,
            last_name="Schmidt",
            first_name="Erika",
            city="Bonn",
            version="1",
            emails="erika@example.de",
            tags="kunde, bayern",
            consent="on",
        ),
    )
    assert edited.status_code == 303, edited.text[:1000]
    detail = (await alice.get(f"contacts/{contact_id}")).text
    assert "Bonn" in detail
    history = detail[detail.index('id="history-heading"') :]
    assert "Ort" in history
    assert "Bonn" in history
    assert "alice" in history
    assert "erika.s@example.de" in history  # the old e-mail list


async def test_validation_messages_stand_next_to_the_fields(crm: CrmHarness) -> None:
    alice = crm.tenant()
    response = await alice.post(
        "contacts",
        data=_form(alice, last_name="", emails="not-an-address", first_name="Erika"),
    )
    assert response.status_code == 422
    page = parse(response.text)
    assert set(page.errors) >= {"last_name", "emails"}
    assert "not-an-address" in page.errors["emails"]
    assert page.inputs["first_name"] == "Erika"  # what was typed is kept
    assert "Bitte prüfen Sie die markierten Felder." in response.text

    company = await alice.post("companies", data=_form(alice, name="X", website="kein web"))
    assert company.status_code == 422
    assert "website" in parse(company.text).errors


async def test_stale_save_shows_the_current_values(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = alice.colleague()
    contact_id = _id_from(await _new_contact(alice, city="Köln"))
    first = await bob.post(
        f"contacts/{contact_id}",
        data=_form(bob, last_name="Schmidt", first_name="Erika", city="Bonn", version="1"),
    )
    assert first.status_code == 303
    stale = await alice.post(
        f"contacts/{contact_id}",
        data=_form(alice, last_name="Schmidt", first_name="Erika", city="Aachen", version="1"),
    )
    assert stale.status_code == 409
    assert "Jemand anderes hat diesen Eintrag inzwischen geändert" in stale.text
    page = parse(stale.text)
    assert page.inputs["city"] == "Bonn"  # the current state, not the stale input
    assert page.inputs["version"] == "2"
    assert "Aachen" in stale.text  # what alice typed is shown, not lost
    contact = (await alice.get(f"api/v1/contacts/{contact_id}")).json()
    assert contact["city"] == "Bonn"


async def test_delete_and_undo(crm: CrmHarness) -> None:
    alice = crm.tenant()
    contact_id = _id_from(await _new_contact(alice))
    deleted = await alice.post(f"contacts/{contact_id}/delete", data=_form(alice))
    assert deleted.status_code == 303
    undo_page = await alice.get(deleted.headers["location"].split("/", 3)[3])
    assert f"/contacts/{contact_id}/restore" in undo_page.text
    assert (await alice.get(f"contacts/{contact_id}")).status_code == 404
    assert f"/contacts/{contact_id}/restore" in (await alice.get("contacts?deleted=1")).text
    restored = await alice.post(f"contacts/{contact_id}/restore", data=_form(alice))
    assert restored.status_code == 303
    assert (await alice.get(f"contacts/{contact_id}")).status_code == 200

    company = await alice.company("Alpha AG")
    await alice.post(f"companies/{company['id']}/delete", data=_form(alice))
    assert (await alice.get(f"companies/{company['id']}")).status_code == 404
    await alice.post(f"companies/{company['id']}/restore", data=_form(alice))
    assert (await alice.get(f"companies/{company['id']}")).status_code == 200


async def test_forms_without_the_csrf_token_are_refused(crm: CrmHarness) -> None:
    alice = crm.tenant()
    contact = await alice.contact("Schmidt")
    for path, data in (
        ("contacts", {"last_name": "Forged"}),
        ("contacts", {"last_name": "Forged", "csrf": "csrf-someone-else"}),
        (f"contacts/{contact['id']}/delete", {}),
        (f"contacts/{contact['id']}", {"last_name": "X", "version": "1", "csrf": ""}),
        ("language", {"lang": "en"}),
        ("companies", {"name": "Forged"}),
    ):
        response = await alice.post(path, data=data)
        assert response.status_code == 403, path
        assert "Das Formular war nicht mehr gültig" in response.text
    listed = (await alice.get("api/v1/contacts")).json()["items"]
    assert [c["last_name"] for c in listed] == ["Schmidt"]
    assert (await alice.get("api/v1/companies")).json()["items"] == []


async def test_pagination_and_sorting(crm: CrmHarness) -> None:
    alice = crm.tenant()
    for n in range(30):
        await alice.contact(f"Person{n:02d}")
    first = await alice.get("contacts")
    assert "Person00" in first.text
    assert "Person24" in first.text
    assert "Person25" not in first.text
    next_link = next(
        url for tag, _, url in parse(first.text).urls if tag == "a" and "cursor=" in url
    )
    second = await alice.get(next_link.split("/", 3)[3])
    assert "Person25" in second.text
    assert "Person29" in second.text
    assert "Person24" not in second.text
    descending = (await alice.get("contacts?sort=name&order=desc")).text
    assert descending.index("Person29") < descending.index("Person28")


async def test_friendly_error_pages_without_stack_traces(crm: CrmHarness) -> None:
    alice = crm.tenant()
    missing = await alice.get(f"contacts/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Nicht gefunden" in missing.text
    assert_links_stay_under_prefix(missing, alice)
    for path in ("no/such/page", "contacts/not-a-uuid", "contacts?cursor=garbage"):
        response = await alice.get(path)
        assert response.status_code in (404, 422), path
        assert response.headers["content-type"].startswith("text/html"), path
        assert "Traceback" not in response.text
    # The API keeps problem+json.
    api = await alice.get(f"api/v1/contacts/{uuid.uuid4()}")
    assert api.headers["content-type"] == "application/problem+json"
    # No identity: a page that points to the login, nothing of the app.
    anonymous = await crm.http.get(f"/s/{alice.link}/contacts")
    assert anonymous.status_code == 401
    assert "Nicht angemeldet" in anonymous.text
    assert "/login" in anonymous.text


async def test_german_by_default_and_english_kept_per_user(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = alice.colleague()
    page = await alice.get("contacts")
    assert '<html lang="de">' in page.text
    assert "Kontakte" in page.text
    chosen = await alice.post(
        "language", data=_form(alice, lang="en", next=f"/s/{alice.link}/contacts")
    )
    assert chosen.status_code == 303
    assert chosen.headers["location"] == f"/s/{alice.link}/contacts"
    for path in ("contacts", "", "companies/new"):
        again = await alice.get(path)
        assert '<html lang="en">' in again.text, path
    assert "Contacts" in (await alice.get("contacts")).text
    assert "Not found" in (await alice.get(f"contacts/{uuid.uuid4()}")).text
    # Kept on the server for alice only: bob still reads German.
    assert '<html lang="de">' in (await bob.get("contacts")).text
    # A return address elsewhere is not followed.
    away = await alice.post("language", data=_form(alice, lang="de", next="https://evil.example/"))
    assert away.headers["location"] == f"/s/{alice.link}/"
