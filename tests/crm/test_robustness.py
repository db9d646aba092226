"""Hostile input, a small pool under load, and routes without an identity."""

import asyncio
import re
import uuid

import httpx

from tests.crm.harness import CrmHarness, TenantClient
from tresor_common.identity import generate_private_key_pem, load_private_key, public_key_pem
from tresor_crm.app import ROUTED_MODULES, create_app
from tresor_crm.config import CrmSettings
from tresor_crm.db import Database


async def test_every_route_needs_an_identity(crm: CrmHarness) -> None:
    """Walk every route of the app: without the gate's identity nothing answers but 401."""
    alice = crm.tenant()
    checked = 0
    routes = [route for module in ROUTED_MODULES for route in module.router.routes]
    for route in routes:
        path: str = getattr(route, "path", "")
        if not path.startswith("/s/{link}"):
            continue
        concrete = re.sub(
            r"\{[^}]+\}",
            lambda m: alice.link if m.group(0) == "{link}" else str(uuid.uuid4()),
            path,
        )
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            response = await crm.http.request(method, concrete)
            assert response.status_code == 401, (method, path, response.status_code)
            checked += 1
    assert checked > 40, "the walk found too few routes to mean anything"


async def test_control_characters_in_queries_are_refused_not_crashes(crm: CrmHarness) -> None:
    alice = crm.tenant()
    await alice.contact("Meier")
    for path in (
        "api/v1/contacts?q=%00",
        "api/v1/contacts?tag=a%00b",
        "api/v1/companies?q=%01",
        "api/v1/search?q=%00",
        "contacts?q=%00",
        "companies?tag=%00",
    ):
        response = await alice.get(path)
        assert response.status_code == 422, (path, response.status_code)


async def test_forged_cursors_are_refused(crm: CrmHarness) -> None:
    import base64
    import json

    alice = crm.tenant()
    for value, sort in (("x\u0000", "name"), ("not a date", "created_at"), (7, "name")):
        raw = json.dumps([value, str(uuid.uuid4())]).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = await alice.get(f"api/v1/contacts?sort={sort}&cursor={cursor}")
        assert response.status_code == 422, (value, response.text)


async def test_values_the_database_cannot_hold_are_refused(crm: CrmHarness) -> None:
    alice = crm.tenant()
    lone_surrogate = await alice.post(
        "api/v1/contacts",
        content=b'{"last_name": "x", "tags": ["a\\ud800"]}',
        headers={"content-type": "application/json"},
    )
    assert lone_surrogate.status_code == 422
    contact = await alice.contact("Zeitreise")
    too_early = await alice.post(
        "api/v1/activities",
        json={
            "kind": "note",
            "body": "x",
            "contact_id": contact["id"],
            "occurred_at": "0001-01-01T00:00:00+14:00",
        },
    )
    assert too_early.status_code == 422, too_early.text


async def test_page_views_never_wait_for_a_second_connection(
    crm_database: tuple[str, str],
) -> None:
    """With every pooled connection taken by a page, none may need another one."""
    owner, runtime = crm_database
    key = load_private_key(generate_private_key_pem())
    settings = CrmSettings(
        environment="development",
        database_url=runtime,
        migration_database_url=owner,
        identity_public_keys=[public_key_pem(key)],
    )
    database = await Database.open(runtime, size=2, timeout_seconds=3)
    try:
        app = create_app(settings, database)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://crm"
        ) as http:
            alice = TenantClient(http, key)
            responses = await asyncio.gather(*(alice.get("contacts") for _ in range(8)))
        assert [r.status_code for r in responses] == [200] * 8
    finally:
        await database.close()


async def test_an_edit_form_keeps_a_company_beyond_the_first_choices(crm: CrmHarness) -> None:
    alice = crm.tenant()
    async with crm.database.tenant_transaction(alice.tenant_id) as conn:
        await conn.execute(
            "INSERT INTO companies (id, name) "
            "SELECT gen_random_uuid(), 'A' || lpad(g::text, 4, '0') FROM generate_series(1, 520) g"
        )
    late = await alice.company("Zeppelin AG")
    contact = await alice.contact("Luftschiffer", company_id=late["id"])
    form = await alice.get(f"contacts/{contact['id']}/edit")
    assert form.status_code == 200
    assert re.search(rf'<option value="{late["id"]}"[^>]*selected', form.text), "company lost"
