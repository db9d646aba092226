"""The deal pages and the notes/tasks fragments: render, post forms, stay under the prefix."""

import re
from typing import Any

from tests.crm.harness import CrmHarness, TenantClient


def _assert_prefixed(client: TenantClient, html: str) -> None:
    prefix = f"/s/{client.link}/"
    for target in re.findall(r'(?:href|action|src)="([^"]*)"', html):
        if target.startswith("#"):
            continue
        assert target.startswith(prefix), target
    assert "<script>" not in html
    assert "style=" not in html


def _form(client: TenantClient, **fields: Any) -> dict[str, Any]:
    return {"csrf": "csrf-" + client.link, **fields}


async def _page(client: TenantClient, rest: str, status: int = 200) -> str:
    response = await client.get(rest)
    assert response.status_code == status, response.text[:2000]
    assert response.headers["content-type"].startswith("text/html")
    _assert_prefixed(client, response.text)
    return response.text


async def test_board_list_and_detail_render_and_move_without_javascript(crm: CrmHarness) -> None:
    alice = crm.tenant()
    company = await alice.company("Müller GmbH")
    created = await alice.post(
        "deals",
        data=_form(alice, title="Großauftrag", value="1.234,56", company_id=company["id"]),
    )
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    assert location.startswith(f"/s/{alice.link}/deals/")
    deal_id = location.split("/")[-1].split("?")[0]

    board = await _page(alice, "deals")
    for stage in ("Neu", "Qualifiziert", "Angebot", "Verhandlung"):
        assert stage in board
    assert "Großauftrag" in board
    assert "1.234,56 €" in board
    assert f"/deals/{deal_id}/move" in board

    stages = (await alice.get("api/v1/stages")).json()
    moved = await alice.post(
        f"deals/{deal_id}/move",
        data=_form(alice, stage_id=stages[2]["id"], version="1", next=f"/s/{alice.link}/deals"),
    )
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/s/{alice.link}/deals?notice=moved"
    assert (await alice.get(f"api/v1/deals/{deal_id}")).json()["stage_name"] == "Angebot"
    stale = await alice.post(
        f"deals/{deal_id}/move", data=_form(alice, stage_id=stages[1]["id"], version="1")
    )
    assert stale.headers["location"].endswith("notice=stale")
    assert "inzwischen geändert" in await _page(alice, "deals?notice=stale")

    listing = await _page(alice, "deals/list")
    assert "Summen je Phase" in listing
    assert listing.count("1.234,56 €") >= 2  # the stage's total, the grand total, the row
    detail = await _page(alice, f"deals/{deal_id}")
    assert "Großauftrag" in detail
    assert "Notizen und Aktivitäten" in detail
    assert (await alice.get("deals/assets/board.js")).status_code == 200
    assert (await alice.get("deals/assets/pipeline.css")).status_code == 200
    assert (await alice.get("deals/assets/other.js")).status_code in (404, 422)


async def test_deal_form_shows_errors_next_to_fields_and_refuses_stale_saves(
    crm: CrmHarness,
) -> None:
    alice = crm.tenant()
    await _page(alice, "deals/new")
    bad = await alice.post("deals", data=_form(alice, title="", value="1,2,3"))
    assert bad.status_code == 422
    _assert_prefixed(alice, bad.text)
    assert 'id="title-error"' in bad.text
    assert 'id="value-error"' in bad.text
    assert 'value="1,2,3"' in bad.text  # the input is kept

    deal = (await alice.post("api/v1/deals", json={"title": "Alt"})).json()
    await _page(alice, f"deals/{deal['id']}/edit")
    first = await alice.post(
        f"deals/{deal['id']}/edit", data=_form(alice, title="Neu 1", value="10", version="1")
    )
    assert first.status_code == 303
    second = await alice.post(
        f"deals/{deal['id']}/edit", data=_form(alice, title="Neu 2", value="20", version="1")
    )
    assert second.status_code == 409
    assert "inzwischen geändert" in second.text
    assert (await alice.get(f"api/v1/deals/{deal['id']}")).json()["title"] == "Neu 1"
    no_csrf = await alice.post(f"deals/{deal['id']}/edit", data={"title": "x", "version": "2"})
    assert no_csrf.status_code == 403


async def test_stage_page_is_for_admins(crm: CrmHarness) -> None:
    admin = crm.tenant(roles=("user", "admin"))
    user = admin.colleague()
    page = await _page(admin, "deals/stages")
    assert "Phase hinzufügen" in page
    added = await admin.post("deals/stages", data=_form(admin, name="Abschluss"))
    assert added.status_code == 303
    stages = (await admin.get("api/v1/stages")).json()
    assert stages[-1]["name"] == "Abschluss"
    up = await admin.post(f"deals/stages/{stages[-1]['id']}", data=_form(admin, action="up"))
    assert up.status_code == 303
    assert [s["name"] for s in (await admin.get("api/v1/stages")).json()][-2:] == [
        "Abschluss",
        "Verhandlung",
    ]
    refused = await user.post("deals/stages", data=_form(user, name="Heimlich"))
    assert refused.status_code == 403
    assert "Phase hinzufügen" not in await _page(user, "deals/stages")


async def test_notes_and_tasks_from_forms(crm: CrmHarness) -> None:
    alice = crm.tenant()
    contact = await alice.contact("Schmidt")
    back = f"/s/{alice.link}/contacts/{contact['id']}"
    note = await alice.post(
        "activities",
        data=_form(
            alice,
            record_type="contact",
            record_id=contact["id"],
            kind="call",
            occurred_on="2030-01-02",
            body="Rückruf",
            next=back,
        ),
    )
    assert note.status_code == 303
    assert note.headers["location"] == back
    empty = await alice.post(
        "activities",
        data=_form(alice, record_type="contact", record_id=contact["id"], body="", next=back),
    )
    assert empty.status_code == 422
    assert 'id="body-error"' in empty.text
    _assert_prefixed(alice, empty.text)

    task = await alice.post(
        "tasks",
        data=_form(
            alice,
            title="Angebot schicken",
            due_date="2020-01-01",
            record_type="contact",
            record_id=contact["id"],
            next=back,
        ),
    )
    assert task.status_code == 303
    tasks = (await alice.get("api/v1/tasks?mine=true&open=true")).json()["items"]
    assert [t["title"] for t in tasks] == ["Angebot schicken"]
    assert tasks[0]["assignee_id"] == str(alice.user_id)

    page = await _page(alice, f"records/contact/{contact['id']}/activities")
    assert "Rückruf" in page
    assert "Angebot schicken" in page
    assert 'class="overdue"' in page  # due in 2020
    mine = await _page(alice, "tasks")
    assert "Angebot schicken" in mine

    done = await alice.post(
        f"tasks/{tasks[0]['id']}/done", data=_form(alice, version="1", next=back)
    )
    assert done.status_code == 303
    assert (await alice.get(f"api/v1/tasks/{tasks[0]['id']}")).json()["done"]
    assert "Angebot schicken" not in await _page(alice, "tasks")

    activity = (
        await alice.get(f"api/v1/activities?record_type=contact&record_id={contact['id']}")
    ).json()[0]
    bob = alice.colleague()
    refused = await bob.post(f"activities/{activity['id']}/delete", data=_form(bob, next=back))
    assert refused.status_code == 403
    deleted = await alice.post(f"activities/{activity['id']}/delete", data=_form(alice))
    assert deleted.status_code == 303


async def test_other_tenants_deals_are_not_found_on_pages(crm: CrmHarness) -> None:
    a, b = crm.tenant(), crm.tenant()
    theirs = (await b.post("api/v1/deals", json={"title": "Geheim"})).json()
    assert (await a.get(f"deals/{theirs['id']}")).status_code == 404
    assert "Geheim" not in (await a.get("deals")).text
    assert "Geheim" not in (await a.get("deals/list")).text
    moved = await a.post(
        f"deals/{theirs['id']}/move",
        data=_form(a, stage_id=theirs["stage_id"], version="1"),
    )
    assert moved.status_code in (404, 422)
