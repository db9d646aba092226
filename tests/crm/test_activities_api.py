"""Notes/activities and tasks through the JSON API: CRUD, rules, versions, isolation."""

import uuid
from typing import Any

from tests.crm.harness import CrmHarness, TenantClient


async def _activity(client: TenantClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("api/v1/activities", json=fields)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _task(
    client: TenantClient, title: str = "Angebot schicken", **fields: Any
) -> dict[str, Any]:
    response = await client.post("api/v1/tasks", json={"title": title, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _deal(client: TenantClient) -> dict[str, Any]:
    response = await client.post("api/v1/deals", json={"title": "Deal"})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_activities_on_contacts_companies_and_deals(crm: CrmHarness) -> None:
    alice = crm.tenant()
    contact = await alice.contact("Schmidt", first_name="Erika")
    company = await alice.company("Müller GmbH")
    deal = await _deal(alice)
    call = await _activity(
        alice,
        record_type="contact",
        record_id=contact["id"],
        kind="call",
        occurred_at="2030-01-02T10:00:00+01:00",
        body="Rückruf wegen Angebot\nzweite Zeile",
    )
    assert (call["kind"], call["author_name"], call["record_label"]) == (
        "call", "alice", "Erika Schmidt"
    )  # fmt: skip
    assert call["author_id"] == str(alice.user_id)
    note = await _activity(alice, record_type="contact", record_id=contact["id"], body="Notiz")
    assert note["kind"] == "note"
    await _activity(alice, record_type="company", record_id=company["id"], kind="meeting", body="M")
    await _activity(alice, record_type="deal", record_id=deal["id"], kind="email", body="E")

    on_contact = (
        await alice.get(f"api/v1/activities?record_type=contact&record_id={contact['id']}")
    ).json()
    assert [a["id"] for a in on_contact] == [call["id"], note["id"]]  # newest first
    on_deal = (await alice.get(f"api/v1/activities?record_type=deal&record_id={deal['id']}")).json()
    assert [a["body"] for a in on_deal] == ["E"]
    recent = (await alice.get("api/v1/activities?limit=3")).json()
    assert len(recent) == 3


async def test_activity_validation(crm: CrmHarness) -> None:
    alice = crm.tenant()
    contact = await alice.contact()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"record_type": "contact", "record_id": contact["id"]}, "body"),
        ({"record_type": "contact", "record_id": contact["id"], "body": " "}, "body"),
        (
            {"record_type": "contact", "record_id": contact["id"], "body": "x", "kind": "fax"},
            "kind",
        ),
        ({"record_type": "person", "record_id": contact["id"], "body": "x"}, "record_type"),
        ({"record_type": "contact", "record_id": str(uuid.uuid4()), "body": "x"}, "record_id"),
        ({"record_type": "contact", "record_id": contact["id"], "body": "a\x07"}, "body"),
    ]
    for body, field in cases:
        response = await alice.post("api/v1/activities", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in response.json()["errors"], (body, response.json())
    missing = await alice.get(f"api/v1/activities?record_type=contact&record_id={uuid.uuid4()}")
    assert missing.status_code == 404


async def test_only_the_author_or_an_admin_deletes_an_activity(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = alice.colleague("bob")
    boss = alice.colleague("boss", roles=("user", "admin"))
    contact = await alice.contact()
    mine = await _activity(alice, record_type="contact", record_id=contact["id"], body="A")
    other = await _activity(alice, record_type="contact", record_id=contact["id"], body="B")
    assert (await bob.delete(f"api/v1/activities/{mine['id']}")).status_code == 403
    assert (await alice.delete(f"api/v1/activities/{mine['id']}")).status_code == 204
    assert (await alice.get(f"api/v1/activities/{mine['id']}")).status_code == 404
    assert (await boss.delete(f"api/v1/activities/{other['id']}")).status_code == 204


async def test_task_crud_done_and_my_open_tasks(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = alice.colleague("bob")
    contact = await alice.contact()
    later = await _task(alice, "Später", due_date="2030-02-01")
    soon = await _task(
        alice, "Bald", due_date="2030-01-01", record_type="contact", record_id=contact["id"]
    )
    someday = await _task(alice, "Irgendwann")
    for_bob = await _task(alice, "Für Bob", assignee_id=str(bob.user_id), due_date="2029-01-01")
    assert soon["assignee_id"] == str(alice.user_id)
    assert (soon["record_type"], soon["record_id"]) == ("contact", contact["id"])
    assert for_bob["assignee_id"] == str(bob.user_id)

    mine = (await alice.get("api/v1/tasks?mine=true&open=true")).json()["items"]
    assert [t["title"] for t in mine] == ["Bald", "Später", "Irgendwann"]
    bobs = (await bob.get("api/v1/tasks?mine=true")).json()["items"]
    assert [t["id"] for t in bobs] == [for_bob["id"]]
    on_contact = (
        await alice.get(f"api/v1/tasks?record_type=contact&record_id={contact['id']}")
    ).json()["items"]
    assert [t["id"] for t in on_contact] == [soon["id"]]

    done = await alice.post(f"api/v1/tasks/{soon['id']}/done", json={"version": 1})
    assert done.status_code == 200, done.text
    assert done.json()["done"]
    assert done.json()["done_at"]
    stale = await bob.post(f"api/v1/tasks/{soon['id']}/done", json={"done": False, "version": 1})
    assert stale.status_code == 409
    mine = (await alice.get("api/v1/tasks?mine=true&open=true")).json()["items"]
    assert [t["title"] for t in mine] == ["Später", "Irgendwann"]
    reopened = await alice.post(f"api/v1/tasks/{soon['id']}/done", json={"done": False})
    assert not reopened.json()["done"]
    assert reopened.json()["done_at"] is None

    edited = await alice.put(
        f"api/v1/tasks/{later['id']}",
        json={
            "title": "Später, wirklich",
            "due_date": None,
            "assignee_id": str(bob.user_id),
            "version": 1,
        },
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["title"], edited.json()["version"]) == ("Später, wirklich", 2)
    conflict = await alice.put(f"api/v1/tasks/{later['id']}", json={"title": "x", "version": 1})
    assert conflict.status_code == 409

    page = (await alice.get("api/v1/tasks?limit=2")).json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    rest = (await alice.get(f"api/v1/tasks?limit=2&cursor={page['next_cursor']}")).json()
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None

    assert (await alice.delete(f"api/v1/tasks/{someday['id']}")).status_code == 204
    assert (await alice.get(f"api/v1/tasks/{someday['id']}")).status_code == 404


async def test_task_validation(crm: CrmHarness) -> None:
    alice = crm.tenant()
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x", "due_date": "morgen"}, "due_date"),
        ({"title": "x", "assignee_id": "bob"}, "assignee_id"),
        ({"title": "x", "record_type": "contact"}, "body"),
        ({"title": "x", "record_type": "deal", "record_id": str(uuid.uuid4())}, "record_id"),
    ]
    for body, field in cases:
        response = await alice.post("api/v1/tasks", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in response.json()["errors"], (body, response.json())


async def test_tenants_see_and_touch_only_their_own_activities_and_tasks(crm: CrmHarness) -> None:
    a, b = crm.tenant(roles=("user", "admin")), crm.tenant()
    their_contact = await b.contact("Gleich")
    their_deal = await _deal(b)
    theirs = await _activity(b, record_type="contact", record_id=their_contact["id"], body="geheim")
    their_task = await _task(b, "Geheim", record_type="deal", record_id=their_deal["id"])
    own_contact = await a.contact("Gleich")
    await _activity(a, record_type="contact", record_id=own_contact["id"], body="meins")
    await _task(a, "Meins")

    assert "geheim" not in (await a.get("api/v1/activities")).text
    assert "Geheim" not in (await a.get("api/v1/tasks")).text
    assert (await a.get(f"api/v1/activities/{theirs['id']}")).status_code == 404
    assert (await a.delete(f"api/v1/activities/{theirs['id']}")).status_code == 404
    assert (
        await a.get(f"api/v1/activities?record_type=contact&record_id={their_contact['id']}")
    ).status_code == 404
    assert (await a.get(f"api/v1/tasks/{their_task['id']}")).status_code == 404
    assert (
        await a.put(f"api/v1/tasks/{their_task['id']}", json={"title": "x", "version": 1})
    ).status_code == 404
    assert (await a.post(f"api/v1/tasks/{their_task['id']}/done")).status_code == 404
    assert (await a.delete(f"api/v1/tasks/{their_task['id']}")).status_code == 404
    # Nothing of A can hang on B's records.
    on_theirs = await a.post(
        "api/v1/activities",
        json={"record_type": "contact", "record_id": their_contact["id"], "body": "x"},
    )
    assert on_theirs.status_code == 422
    task_on_theirs = await a.post(
        "api/v1/tasks", json={"title": "x", "record_type": "deal", "record_id": their_deal["id"]}
    )
    assert task_on_theirs.status_code == 422
    assert (await b.get(f"api/v1/tasks/{their_task['id']}")).json() == their_task
    assert (await b.get(f"api/v1/activities/{theirs['id']}")).json() == theirs
