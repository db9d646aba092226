"""The CRM's gRPC API over a real socket against a real, migrated PostgreSQL database."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from tests.crm.harness import CrmHarness, TenantClient
from tresor.crm.v1 import crm_pb2 as pb
from tresor.crm.v1 import crm_pb2_grpc
from tresor_common.grpc_tokens import bearer_metadata
from tresor_common.identity import public_key_pem
from tresor_crm.config import CrmSettings
from tresor_crm.grpc_server import create_grpc_server

# Small batches, so that streaming a few hundred rows crosses many batch boundaries.
STREAM_BATCH = 7


@dataclass
class Grpc:
    stub: crm_pb2_grpc.CrmServiceAsyncStub  # exists for type checkers only
    channel: aio.Channel
    token: str
    crm: CrmHarness

    @property
    def auth(self) -> tuple[tuple[str, str]]:
        return bearer_metadata(self.token)


@pytest.fixture
async def rpc(crm: CrmHarness) -> AsyncIterator[Grpc]:
    token = secrets.token_urlsafe(24)
    settings = CrmSettings(
        environment="development",
        database_url=crm.runtime_url,
        identity_public_keys=[public_key_pem(crm.signing_key)],
        grpc_enabled=True,
        grpc_service_tokens=SecretStr(token),
    )
    server = await create_grpc_server(
        settings, crm.database, "127.0.0.1:0", stream_batch_size=STREAM_BATCH
    )
    channel = aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        stub: Any = crm_pb2_grpc.CrmServiceStub(channel)
        yield Grpc(stub, channel, token, crm)
    finally:
        await channel.close(None)
        await server.stop(grace=1)


async def _code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(aio.AioRpcError) as raised:
        await call
    code: grpc.StatusCode = raised.value.code()
    return code


async def _stream(rpc: Grpc, tenant_id: uuid.UUID | str) -> list[pb.TenantRecord]:
    request = pb.StreamTenantRecordsRequest(tenant_id=str(tenant_id))
    return [record async for record in rpc.stub.StreamTenantRecords(request, metadata=rpc.auth)]


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pytest.fail("a record was streamed without a token")


def _key(record: pb.TenantRecord) -> tuple[str, str]:
    kind = record.WhichOneof("record")
    assert kind is not None
    return kind, getattr(record, kind).id


async def _tenant_with_data(client: TenantClient) -> dict[str, Any]:
    company = await client.company("Müller Maschinenbau GmbH", city="Stuttgart", tags=["kunde"])
    contact = await client.contact(
        "Schmidt",
        first_name="Anna",
        company_id=company["id"],
        emails=["anna.schmidt@mueller-maschinenbau.de"],
        phones=["+49 711 123456"],
        tags=["kunde", "vip"],
        consent=True,
    )
    return {"company": company, "contact": contact}


async def _add_deal_activity_task(
    owner_url: str, tenant_id: uuid.UUID, company_id: str, contact_id: str
) -> dict[str, uuid.UUID]:
    """Rows of the kinds whose API others are writing, straight into the tables."""
    ids = {name: uuid.uuid4() for name in ("stage", "deal", "activity", "task")}
    async with await psycopg.AsyncConnection.connect(owner_url) as conn:
        await conn.execute("SELECT set_config('tresor.tenant_id', %s, false)", (str(tenant_id),))
        await conn.execute(
            "INSERT INTO pipeline_stages (id, name, position) VALUES (%s, 'Angebot', 1)",
            (ids["stage"],),
        )
        await conn.execute(
            "INSERT INTO deals (id, title, company_id, value_cents, stage_id, expected_close) "
            "VALUES (%s, 'Wartungsvertrag', %s, 1250000, %s, '2027-03-31')",
            (ids["deal"], company_id, ids["stage"]),
        )
        await conn.execute(
            "INSERT INTO deal_contacts (deal_id, contact_id) VALUES (%s, %s)",
            (ids["deal"], contact_id),
        )
        await conn.execute(
            "INSERT INTO activities (id, kind, body, author_name, contact_id) "
            "VALUES (%s, 'call', 'Rückruf vereinbart', 'alice', %s)",
            (ids["activity"], contact_id),
        )
        await conn.execute(
            "INSERT INTO tasks (id, title, due_date, deal_id) "
            "VALUES (%s, 'Angebot schicken', '2027-01-15', %s)",
            (ids["task"], ids["deal"]),
        )
        await conn.commit()
    return ids


# -- service tokens and health --------------------------------------------------------------


async def test_health_answers_without_a_token(rpc: Grpc) -> None:
    health = health_pb2_grpc.HealthStub(rpc.channel)
    for service in ("", "tresor.crm.v1.CrmService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong-token-of-enough-length"),),
        (("authorization", "Basic " + "x" * 24),),
    ],
    ids=["none", "wrong", "other-scheme"],
)
async def test_calls_without_the_service_token_are_refused(
    rpc: Grpc, metadata: tuple[tuple[str, str], ...]
) -> None:
    client = rpc.crm.tenant()
    data = await _tenant_with_data(client)
    tenant = str(client.tenant_id)
    calls = [
        rpc.stub.GetContact(
            pb.GetContactRequest(tenant_id=tenant, contact_id=data["contact"]["id"]),
            metadata=metadata,
        ),
        rpc.stub.GetCompany(
            pb.GetCompanyRequest(tenant_id=tenant, company_id=data["company"]["id"]),
            metadata=metadata,
        ),
        rpc.stub.ListContacts(pb.ListContactsRequest(tenant_id=tenant), metadata=metadata),
        rpc.stub.ListCompanies(pb.ListCompaniesRequest(tenant_id=tenant), metadata=metadata),
    ]
    for call in calls:
        assert await _code_of(call) == grpc.StatusCode.UNAUTHENTICATED
    stream = rpc.stub.StreamTenantRecords(
        pb.StreamTenantRecordsRequest(tenant_id=tenant), metadata=metadata
    )
    with pytest.raises(aio.AioRpcError) as raised:
        await _drain(stream)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- reading one record ---------------------------------------------------------------------


async def test_get_contact_and_company(rpc: Grpc) -> None:
    client = rpc.crm.tenant()
    data = await _tenant_with_data(client)
    contact = await rpc.stub.GetContact(
        pb.GetContactRequest(tenant_id=str(client.tenant_id), contact_id=data["contact"]["id"]),
        metadata=rpc.auth,
    )
    assert contact.id == data["contact"]["id"]
    assert contact.tenant_id == str(client.tenant_id)
    assert (contact.first_name, contact.last_name) == ("Anna", "Schmidt")
    assert contact.company_id == data["company"]["id"]
    assert contact.company_name == "Müller Maschinenbau GmbH"
    assert list(contact.emails) == ["anna.schmidt@mueller-maschinenbau.de"]
    assert list(contact.phones) == ["+49 711 123456"]
    assert list(contact.tags) == ["kunde", "vip"]
    assert contact.consent
    assert contact.HasField("consent_at")
    assert contact.version == 1
    assert not contact.deleted

    # Custom fields are defined per tenant elsewhere; a value straight into the row suffices.
    async with await psycopg.AsyncConnection.connect(rpc.crm.owner_url) as conn:
        await conn.execute(
            """UPDATE companies SET custom = '{"umsatz": 12, "region": "Süd"}' WHERE id = %s""",
            (data["company"]["id"],),
        )
    company = await rpc.stub.GetCompany(
        pb.GetCompanyRequest(tenant_id=str(client.tenant_id), company_id=data["company"]["id"]),
        metadata=rpc.auth,
    )
    assert company.name == "Müller Maschinenbau GmbH"
    assert company.address.city == "Stuttgart"
    assert dict(company.custom) == {"umsatz": 12, "region": "Süd"}
    assert company.created_at.ToDatetime().year >= 2025


async def test_bad_input_is_invalid_argument(rpc: Grpc) -> None:
    client = rpc.crm.tenant()
    tenant = str(client.tenant_id)
    some_id = str(uuid.uuid4())
    cases = [
        rpc.stub.GetContact(pb.GetContactRequest(contact_id=some_id), metadata=rpc.auth),
        rpc.stub.GetContact(
            pb.GetContactRequest(tenant_id="acme", contact_id=some_id), metadata=rpc.auth
        ),
        rpc.stub.GetContact(
            pb.GetContactRequest(tenant_id=tenant, contact_id="42"), metadata=rpc.auth
        ),
        rpc.stub.GetContact(pb.GetContactRequest(tenant_id=tenant), metadata=rpc.auth),
        rpc.stub.GetCompany(
            pb.GetCompanyRequest(tenant_id=tenant, company_id="'; DROP TABLE companies; --"),
            metadata=rpc.auth,
        ),
        rpc.stub.ListContacts(
            pb.ListContactsRequest(tenant_id=tenant, page_token="not-a-token"), metadata=rpc.auth
        ),
        rpc.stub.ListContacts(
            pb.ListContactsRequest(tenant_id=tenant, page_size=-1), metadata=rpc.auth
        ),
        rpc.stub.ListContacts(
            pb.ListContactsRequest(tenant_id=tenant, query="x" * 201), metadata=rpc.auth
        ),
        rpc.stub.ListContacts(
            pb.ListContactsRequest(tenant_id=tenant, query="a\x00b"), metadata=rpc.auth
        ),
        rpc.stub.ListContacts(
            pb.ListContactsRequest(tenant_id=tenant, company_id="nope"), metadata=rpc.auth
        ),
        rpc.stub.ListCompanies(pb.ListCompaniesRequest(tenant_id=""), metadata=rpc.auth),
    ]
    for call in cases:
        assert await _code_of(call) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(aio.AioRpcError) as raised:
        await _stream(rpc, "not-a-uuid")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unknown_and_deleted_records_are_not_found(rpc: Grpc) -> None:
    client = rpc.crm.tenant()
    data = await _tenant_with_data(client)
    tenant = str(client.tenant_id)
    assert (await client.delete(f"api/v1/contacts/{data['contact']['id']}")).status_code == 204
    for contact_id in (str(uuid.uuid4()), data["contact"]["id"]):
        contact = rpc.stub.GetContact(
            pb.GetContactRequest(tenant_id=tenant, contact_id=contact_id), metadata=rpc.auth
        )
        assert await _code_of(contact) == grpc.StatusCode.NOT_FOUND
    company = rpc.stub.GetCompany(
        pb.GetCompanyRequest(tenant_id=tenant, company_id=str(uuid.uuid4())), metadata=rpc.auth
    )
    assert await _code_of(company) == grpc.StatusCode.NOT_FOUND


# -- lists ----------------------------------------------------------------------------------


async def test_list_contacts_pages_through_every_contact_once(rpc: Grpc) -> None:
    client = rpc.crm.tenant()
    company = await client.company("Weber & Söhne KG", tags=["lieferant"])
    made = [
        await client.contact(name, first_name="Jonas", company_id=company["id"] if i % 2 else None)
        for i, name in enumerate(["Zimmermann", "Bauer", "Wagner", "Becker", "Hoffmann", "Koch"])
    ]
    made.append(await client.contact("Bauer", first_name="Lena", emails=["lena@bauer-it.de"]))

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await rpc.stub.ListContacts(
            pb.ListContactsRequest(tenant_id=str(client.tenant_id), page_size=3, page_token=token),
            metadata=rpc.auth,
        )
        pages += 1
        assert len(page.contacts) <= 3
        seen += [c.id for c in page.contacts]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(c["id"] for c in made)
    assert len(seen) == len(set(seen))
    names = [(c["last_name"], c["first_name"]) for c in made]
    by_id = {c["id"]: (c["last_name"].lower(), c["first_name"].lower()) for c in made}
    assert [by_id[i] for i in seen] == sorted(by_id[i] for i in seen), names

    async def ids(**fields: Any) -> set[str]:
        page = await rpc.stub.ListContacts(
            pb.ListContactsRequest(tenant_id=str(client.tenant_id), **fields), metadata=rpc.auth
        )
        return {c.id for c in page.contacts}

    assert await ids(query="bauer-it") == {made[-1]["id"]}
    assert await ids(query="BAUER") == {made[1]["id"], made[-1]["id"]}
    # A contact is found by its company's name.
    assert await ids(query="söhne") == {made[i]["id"] for i in (1, 3, 5)}
    assert await ids(company_id=company["id"]) == {made[i]["id"] for i in (1, 3, 5)}
    assert await ids(query="nobody-has-this") == set()


async def test_list_companies_with_search_tag_and_pages(rpc: Grpc) -> None:
    client = rpc.crm.tenant()
    made = [
        await client.company(name, tags=tags)
        for name, tags in [
            ("Schneider Logistik GmbH", ["lieferant"]),
            ("Fischer Bau AG", ["kunde"]),
            ("Meyer Software GmbH", ["kunde", "partner"]),
        ]
    ]
    tenant = str(client.tenant_id)
    first = await rpc.stub.ListCompanies(
        pb.ListCompaniesRequest(tenant_id=tenant, page_size=2), metadata=rpc.auth
    )
    second = await rpc.stub.ListCompanies(
        pb.ListCompaniesRequest(tenant_id=tenant, page_size=2, page_token=first.next_page_token),
        metadata=rpc.auth,
    )
    assert [c.name for c in first.companies] == ["Fischer Bau AG", "Meyer Software GmbH"]
    assert [c.name for c in second.companies] == ["Schneider Logistik GmbH"]
    assert second.next_page_token == ""
    tagged = await rpc.stub.ListCompanies(
        pb.ListCompaniesRequest(tenant_id=tenant, tag="kunde"), metadata=rpc.auth
    )
    assert {c.id for c in tagged.companies} == {made[1]["id"], made[2]["id"]}
    found = await rpc.stub.ListCompanies(
        pb.ListCompaniesRequest(tenant_id=tenant, query="logistik"), metadata=rpc.auth
    )
    assert [c.id for c in found.companies] == [made[0]["id"]]


# -- tenant isolation -----------------------------------------------------------------------


async def test_tenant_a_never_gets_tenant_bs_rows(rpc: Grpc) -> None:
    a, b = rpc.crm.tenant(), rpc.crm.tenant()
    mine, theirs = await _tenant_with_data(a), await _tenant_with_data(b)
    await _add_deal_activity_task(
        rpc.crm.owner_url, b.tenant_id, theirs["company"]["id"], theirs["contact"]["id"]
    )
    tenant_a = str(a.tenant_id)
    their_ids = {theirs["company"]["id"], theirs["contact"]["id"]}

    # Guessed ids of B's rows, asked for as A.
    for call in (
        rpc.stub.GetContact(
            pb.GetContactRequest(tenant_id=tenant_a, contact_id=theirs["contact"]["id"]),
            metadata=rpc.auth,
        ),
        rpc.stub.GetCompany(
            pb.GetCompanyRequest(tenant_id=tenant_a, company_id=theirs["company"]["id"]),
            metadata=rpc.auth,
        ),
    ):
        assert await _code_of(call) == grpc.StatusCode.NOT_FOUND

    for request in (
        pb.ListContactsRequest(tenant_id=tenant_a),
        pb.ListContactsRequest(tenant_id=tenant_a, query="schmidt"),
        pb.ListContactsRequest(tenant_id=tenant_a, tag="vip"),
        pb.ListContactsRequest(tenant_id=tenant_a, company_id=theirs["company"]["id"]),
    ):
        page = await rpc.stub.ListContacts(request, metadata=rpc.auth)
        assert not {c.id for c in page.contacts} & their_ids
        assert {c.tenant_id for c in page.contacts} <= {tenant_a}
    contacts = await rpc.stub.ListContacts(
        pb.ListContactsRequest(tenant_id=tenant_a, query="schmidt"), metadata=rpc.auth
    )
    assert [c.id for c in contacts.contacts] == [mine["contact"]["id"]]
    companies = await rpc.stub.ListCompanies(
        pb.ListCompaniesRequest(tenant_id=tenant_a, query="müller"), metadata=rpc.auth
    )
    assert [c.id for c in companies.companies] == [mine["company"]["id"]]

    streamed = await _stream(rpc, tenant_a)
    assert {_key(r) for r in streamed} == {
        ("company", mine["company"]["id"]),
        ("contact", mine["contact"]["id"]),
    }
    # A tenant nobody has: nothing at all.
    assert await _stream(rpc, uuid.uuid4()) == []


# -- streaming ------------------------------------------------------------------------------


async def test_stream_returns_every_record_of_the_tenant_exactly_once(rpc: Grpc) -> None:
    client, other = rpc.crm.tenant(), rpc.crm.tenant()
    data = await _tenant_with_data(client)
    await _tenant_with_data(other)
    extra = await _add_deal_activity_task(
        rpc.crm.owner_url, client.tenant_id, data["company"]["id"], data["contact"]["id"]
    )
    # Enough rows for many batches, bulk-inserted as the tenant.
    bulk_companies = [uuid.uuid4() for _ in range(40)]
    bulk_contacts = [uuid.uuid4() for _ in range(120)]
    async with await psycopg.AsyncConnection.connect(rpc.crm.owner_url) as conn:
        await conn.execute(
            "SELECT set_config('tresor.tenant_id', %s, false)", (str(client.tenant_id),)
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO companies (id, name) VALUES (%s, %s)",
                [(cid, f"Firma {i}") for i, cid in enumerate(bulk_companies)],
            )
            await cur.executemany(
                "INSERT INTO contacts (id, last_name, company_id) VALUES (%s, %s, %s)",
                [
                    (cid, f"Person {i}", bulk_companies[i % 40])
                    for i, cid in enumerate(bulk_contacts)
                ],
            )
        await conn.commit()
    deleted = await client.contact("Gelöscht")
    assert (await client.delete(f"api/v1/contacts/{deleted['id']}")).status_code == 204

    streamed = await _stream(rpc, client.tenant_id)
    keys = [_key(r) for r in streamed]
    expected = (
        {("company", data["company"]["id"])}
        | {("company", str(cid)) for cid in bulk_companies}
        | {("contact", data["contact"]["id"]), ("contact", deleted["id"])}
        | {("contact", str(cid)) for cid in bulk_contacts}
        | {("deal", str(extra["deal"])), ("activity", str(extra["activity"]))}
        | {("task", str(extra["task"]))}
    )
    assert Counter(keys) == Counter(expected)
    # Referred-to kinds come first.
    kinds = [kind for kind, _ in keys]
    assert kinds == sorted(kinds, key=["company", "contact", "deal", "activity", "task"].index)
    assert all(
        getattr(r, r.WhichOneof("record") or "").tenant_id == str(client.tenant_id)
        for r in streamed
    )

    by_key = {_key(r): r for r in streamed}
    assert by_key[("contact", deleted["id"])].contact.deleted
    deal = by_key[("deal", str(extra["deal"]))].deal
    assert (deal.title, deal.value_cents, deal.stage_name) == (
        "Wartungsvertrag",
        1250000,
        "Angebot",
    )
    assert list(deal.contact_ids) == [data["contact"]["id"]]
    assert deal.expected_close == "2027-03-31"
    activity = by_key[("activity", str(extra["activity"]))].activity
    assert (activity.kind, activity.body, activity.contact_id) == (
        "call",
        "Rückruf vereinbart",
        data["contact"]["id"],
    )
    task = by_key[("task", str(extra["task"]))].task
    assert (task.title, task.due_date, task.deal_id) == (
        "Angebot schicken",
        "2027-01-15",
        str(extra["deal"]),
    )
