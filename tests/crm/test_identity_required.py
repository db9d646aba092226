"""No valid identity signed by the gate: 401, whatever else the request says."""

import time

from tests.crm.harness import CrmHarness
from tresor_common.identity import IDENTITY_HEADER, generate_private_key_pem, load_private_key


async def test_missing_identity(crm: CrmHarness) -> None:
    alice = crm.tenant()
    response = await crm.http.get(alice.path("api/v1/contacts"))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_forged_identity(crm: CrmHarness) -> None:
    alice = crm.tenant()
    forger = crm.tenant()
    forger.signing_key = load_private_key(generate_private_key_pem())
    forger.link = alice.link
    forger.tenant_id = alice.tenant_id
    response = await forger.get("api/v1/contacts")
    assert response.status_code == 401


async def test_expired_identity(crm: CrmHarness) -> None:
    alice = crm.tenant()
    past = time.time() - 300
    header = alice.identity_header(issued_at=past, expires_at=past + 60)
    response = await crm.http.get(alice.path("api/v1/contacts"), headers={IDENTITY_HEADER: header})
    assert response.status_code == 401


async def test_identity_for_another_link(crm: CrmHarness) -> None:
    alice = crm.tenant()
    bob = crm.tenant()
    response = await crm.http.get(
        bob.path("api/v1/contacts"), headers={IDENTITY_HEADER: alice.identity_header()}
    )
    assert response.status_code == 401


async def test_garbage_identity(crm: CrmHarness) -> None:
    alice = crm.tenant()
    for header in (b"x", b"a.b", b"e30." + b"A" * 86, "🙂.🙂".encode()):
        response = await crm.http.get(
            alice.path("api/v1/contacts"), headers={IDENTITY_HEADER.encode(): header}
        )
        assert response.status_code == 401
