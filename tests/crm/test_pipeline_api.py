"""Deals and stages through the JSON API: CRUD, money, moves, totals, versions, isolation."""

import uuid
from typing import Any

from tests.crm.harness import CrmHarness, TenantClient


async def _stages(client: TenantClient) -> list[dict[str, Any]]:
    response = await client.get("api/v1/stages")
    assert response.status_code == 200, response.text
    stages: list[dict[str, Any]] = response.json()
    return stages


async def _deal(client: TenantClient, title: str = "Großauftrag", **fields: Any) -> dict[str, Any]:
    response = await client.post("api/v1/deals", json={"title": title, **fields})
    assert response.status_code == 201, response.text
    deal: dict[str, Any] = response.json()
    return deal


def _editable(deal: dict[str, Any]) -> dict[str, Any]:
    keep = {
        "title", "company_id", "contact_ids", "value", "stage_id", "expected_close",
        "owner_id", "outcome", "outcome_reason",
    }  # fmt: skip
    return {key: value for key, value in deal.items() if key in keep}


async def test_a_new_tenant_gets_default_stages_once(crm: CrmHarness) -> None:
    alice = crm.tenant()
    first = await _stages(alice)
    assert [s["name"] for s in first] == ["Neu", "Qualifiziert", "Angebot", "Verhandlung"]
    assert [s["position"] for s in first] == [0, 1, 2, 3]
    assert await _stages(alice) == first
    assert await _stages(alice.colleague()) == first


async def test_deal_crud_with_company_contacts_and_money(crm: CrmHarness) -> None:
    alice = crm.tenant()
    company = await alice.company("Müller GmbH")
    one, two = await alice.contact("Eins"), await alice.contact("Zwei")
    deal = await _deal(
        alice,
        company_id=company["id"],
        contact_ids=[one["id"], two["id"], one["id"]],
        value=1234.56,
        expected_close="2030-06-30",
    )
    stages = await _stages(alice)
    assert deal["stage_id"] == stages[0]["id"]
    assert deal["stage_name"] == "Neu"
    assert deal["value"] == "1234.56"
    assert deal["value_cents"] == 123456
    assert deal["company_name"] == "Müller GmbH"
    assert sorted(deal["contact_ids"]) == sorted([one["id"], two["id"]])
    assert deal["owner_id"] == str(alice.user_id)
    assert deal["outcome"] == "open"
    assert deal["version"] == 1

    # A German amount as a string is taken as well; many digits never round through a float.
    updated = await alice.put(
        f"api/v1/deals/{deal['id']}",
        json={
            **_editable(deal),
            "value": "9.999.999.999,99",
            "contact_ids": [two["id"]],
            "outcome": "won",
            "outcome_reason": "bestes Angebot",
            "version": 1,
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["value"], body["value_cents"]) == ("9999999999.99", 999999999999)
    assert body["contact_ids"] == [two["id"]]
    assert (body["outcome"], body["outcome_reason"]) == ("won", "bestes Angebot")
    assert body["version"] == 2
    exact = await alice.post(
        "api/v1/deals",
        content=b'{"title": "exakt", "value": 12345678901.23}',
        headers={"content-type": "application/json"},
    )
    assert exact.json()["value_cents"] == 1234567890123

    changes = (await alice.get(f"api/v1/deals/{deal['id']}/history")).json()
    changed = {c["field"]: (c["old_value"], c["new_value"]) for c in reversed(changes)}
    assert changed["value"] == ("1234.56", "9999999999.99")
    assert changed["outcome"] == ("open", "won")
    assert changes[0]["changed_by_name"] == "alice"

    assert (await alice.delete(f"api/v1/deals/{deal['id']}")).status_code == 204
    assert (await alice.get(f"api/v1/deals/{deal['id']}")).status_code == 404
    trash = (await alice.get("api/v1/deals?deleted=true")).json()["items"]
    assert [d["id"] for d in trash] == [deal["id"]]
    restored = await alice.post(f"api/v1/deals/{deal['id']}/restore")
    assert restored.status_code == 200
    assert not restored.json()["deleted"]


async def test_reopening_a_deal_clears_its_reason(crm: CrmHarness) -> None:
    alice = crm.tenant()
    deal = await _deal(alice, outcome="lost", outcome_reason="zu teuer")
    reopened = await alice.put(
        f"api/v1/deals/{deal['id']}", json={**_editable(deal), "outcome": "open", "version": 1}
    )
    assert reopened.json()["outcome_reason"] == ""


async def test_deal_validation_names_the_field(crm: CrmHarness) -> None:
    alice = crm.tenant()
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x", "value": -1}, "value"),
        ({"title": "x", "value": "1,2,3"}, "value"),
        ({"title": "x", "value": 1.005}, "value"),
        ({"title": "x", "value": "abc"}, "value"),
        ({"title": "x", "value": True}, "value"),
        ({"title": "x", "outcome": "maybe"}, "outcome"),
        ({"title": "x", "expected_close": "31.12.2030"}, "expected_close"),
        ({"title": "x", "stage_id": str(uuid.uuid4())}, "stage_id"),
        ({"title": "x", "company_id": str(uuid.uuid4())}, "company_id"),
        ({"title": "x", "contact_ids": [str(uuid.uuid4())]}, "contact_ids"),
        ({"title": "x", "unknown": 1}, "unknown"),
        ({"title": "a\x00b"}, "title"),
    ]
    for body, field in cases:
        response = await alice.post("api/v1/deals", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.json()["errors"], (body, response.json())
    not_json = await alice.post(
        "api/v1/deals", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert (await alice.post("api/v1/deals", json=[1])).status_code == 422


async def test_moving_a_deal_checks_the_version(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = alice.colleague()
    stages = await _stages(alice)
    deal = await _deal(alice)
    moved = await alice.post(
        f"api/v1/deals/{deal['id']}/move", json={"stage_id": stages[2]["id"], "version": 1}
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["stage_name"], moved.json()["version"]) == ("Angebot", 2)
    stale = await bob.post(
        f"api/v1/deals/{deal['id']}/move", json={"stage_id": stages[1]["id"], "version": 1}
    )
    assert stale.status_code == 409
    assert "someone else changed" in stale.json()["detail"]
    assert (await alice.get(f"api/v1/deals/{deal['id']}")).json()["stage_name"] == "Angebot"
    nowhere = await alice.post(
        f"api/v1/deals/{deal['id']}/move", json={"stage_id": str(uuid.uuid4()), "version": 2}
    )
    assert nowhere.status_code == 422
    history = (await alice.get(f"api/v1/deals/{deal['id']}/history")).json()
    assert history[0]["field"] == "stage_id"
    assert history[0]["new_value"] == stages[2]["id"]


async def test_a_stale_edit_is_refused(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = alice.colleague()
    deal = await _deal(alice, value="100")
    first = await alice.put(
        f"api/v1/deals/{deal['id']}", json={**_editable(deal), "value": "200", "version": 1}
    )
    assert first.status_code == 200
    second = await bob.put(
        f"api/v1/deals/{deal['id']}", json={**_editable(deal), "value": "300", "version": 1}
    )
    assert second.status_code == 409
    assert (await alice.get(f"api/v1/deals/{deal['id']}")).json()["value"] == "200.00"


async def test_list_filters_pagination_and_totals(crm: CrmHarness) -> None:
    alice = crm.tenant()
    stages = await _stages(alice)
    company = await alice.company("Alpha AG")
    contact = await alice.contact("Kunde")
    await _deal(alice, "A", value="100,50", company_id=company["id"])
    await _deal(alice, "B", value="200", stage_id=stages[1]["id"], contact_ids=[contact["id"]])
    await _deal(alice, "C", value="0,25", stage_id=stages[1]["id"], outcome="won")
    gone = await _deal(alice, "D", value="1000", stage_id=stages[1]["id"])
    await alice.delete(f"api/v1/deals/{gone['id']}")

    async def titles(query: str) -> list[str]:
        response = await alice.get(f"api/v1/deals?sort=title&order=asc&{query}")
        assert response.status_code == 200, response.text
        return [d["title"] for d in response.json()["items"]]

    assert await titles("") == ["A", "B", "C"]
    assert await titles(f"stage_id={stages[1]['id']}") == ["B", "C"]
    assert await titles("outcome=won") == ["C"]
    assert await titles(f"company_id={company['id']}") == ["A"]
    assert await titles(f"contact_id={contact['id']}") == ["B"]
    assert await titles("q=alpha") == ["A"]

    seen: list[str] = []
    cursor = ""
    while True:
        page = await alice.get(f"api/v1/deals?sort=title&order=asc&limit=2&cursor={cursor}")
        seen += [d["title"] for d in page.json()["items"]]
        if not page.json()["next_cursor"]:
            break
        cursor = page.json()["next_cursor"]
    assert seen == ["A", "B", "C"]

    totals = (await alice.get("api/v1/deals/totals")).json()
    per_stage = {t["name"]: (t["count"], t["value"]) for t in totals["stages"]}
    assert per_stage == {
        "Neu": (1, "100.50"),
        "Qualifiziert": (2, "200.25"),
        "Angebot": (0, "0.00"),
        "Verhandlung": (0, "0.00"),
    }
    assert (totals["count"], totals["value"], totals["value_cents"]) == (3, "300.75", 30075)
    open_only = (await alice.get("api/v1/deals/totals?outcome=open")).json()
    assert open_only["value"] == "300.50"


async def test_admins_name_order_and_delete_stages(crm: CrmHarness) -> None:
    admin = crm.tenant(roles=("user", "admin"))
    stages = await _stages(admin)
    created = await admin.post("api/v1/stages", json={"name": "Abschluss"})
    assert created.status_code == 201, created.text
    assert created.json()["position"] == 4
    duplicate = await admin.post("api/v1/stages", json={"name": "neu"})
    assert duplicate.status_code == 422
    renamed = await admin.put(f"api/v1/stages/{stages[0]['id']}", json={"name": "Lead"})
    assert renamed.json()["name"] == "Lead"

    order = [created.json()["id"]] + [s["id"] for s in stages]
    reordered = await admin.put("api/v1/stages", json={"stage_ids": order})
    assert reordered.status_code == 200, reordered.text
    assert [s["name"] for s in reordered.json()] == [
        "Abschluss", "Lead", "Qualifiziert", "Angebot", "Verhandlung"
    ]  # fmt: skip
    incomplete = await admin.put("api/v1/stages", json={"stage_ids": order[:2]})
    assert incomplete.status_code == 422

    deal = await _deal(admin, stage_id=stages[1]["id"])
    busy = await admin.delete(f"api/v1/stages/{stages[1]['id']}")
    assert busy.status_code == 409
    # Once only trashed deals remain, the stage may go; they move to the first stage.
    await admin.delete(f"api/v1/deals/{deal['id']}")
    assert (await admin.delete(f"api/v1/stages/{stages[1]['id']}")).status_code == 204
    after = await _stages(admin)
    assert [s["name"] for s in after] == ["Abschluss", "Lead", "Angebot", "Verhandlung"]
    assert [s["position"] for s in after] == [0, 1, 2, 3]
    restored = await admin.post(f"api/v1/deals/{deal['id']}/restore")
    assert restored.json()["stage_name"] == "Abschluss"


async def test_users_cannot_change_stages(crm: CrmHarness) -> None:
    user = crm.tenant()
    stages = await _stages(user)
    stage_id = stages[0]["id"]
    refused = [
        await user.post("api/v1/stages", json={"name": "Neu 2"}),
        await user.put(f"api/v1/stages/{stage_id}", json={"name": "x"}),
        await user.put("api/v1/stages", json={"stage_ids": [s["id"] for s in stages][::-1]}),
        await user.delete(f"api/v1/stages/{stage_id}"),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert await _stages(user) == stages


async def test_tenants_see_and_touch_only_their_own_deals(crm: CrmHarness) -> None:
    a, b = crm.tenant(roles=("user", "admin")), crm.tenant()
    their_company = await b.company("Gleiche GmbH")
    their_contact = await b.contact("Gleich")
    their_stages = await _stages(b)
    theirs = await _deal(b, "Gleich", company_id=their_company["id"], value="5")
    mine = await _deal(a, "Gleich", value="7")

    listed = (await a.get("api/v1/deals")).json()["items"]
    assert [d["id"] for d in listed] == [mine["id"]]
    assert [s["id"] for s in await _stages(a)] != [s["id"] for s in their_stages]
    totals = (await a.get("api/v1/deals/totals")).json()
    assert totals["value"] == "7.00"

    deal_id = theirs["id"]
    assert (await a.get(f"api/v1/deals/{deal_id}")).status_code == 404
    assert (await a.get(f"api/v1/deals/{deal_id}/history")).status_code == 404
    assert (
        await a.put(f"api/v1/deals/{deal_id}", json={**_editable(theirs), "version": 1})
    ).status_code == 404
    assert (
        await a.post(
            f"api/v1/deals/{deal_id}/move", json={"stage_id": their_stages[1]["id"], "version": 1}
        )
    ).status_code == 404
    assert (await a.delete(f"api/v1/deals/{deal_id}")).status_code == 404
    assert (await a.post(f"api/v1/deals/{deal_id}/restore")).status_code == 404
    assert (
        await a.put(f"api/v1/stages/{their_stages[0]['id']}", json={"name": "x"})
    ).status_code == 404
    assert (await a.delete(f"api/v1/stages/{their_stages[0]['id']}")).status_code == 404

    # A deal of A cannot point at B's company, contact or stage.
    for field, value in (
        ("company_id", their_company["id"]),
        ("contact_ids", [their_contact["id"]]),
        ("stage_id", their_stages[0]["id"]),
    ):
        response = await a.post("api/v1/deals", json={"title": "x", field: value})
        assert response.status_code == 422, (field, response.text)
        assert field in response.json()["errors"]
    moved = await a.post(
        f"api/v1/deals/{mine['id']}/move", json={"stage_id": their_stages[1]["id"], "version": 1}
    )
    assert moved.status_code == 422
    # B's deal is as it was.
    assert (await b.get(f"api/v1/deals/{deal_id}")).json() == theirs
