"""The CRM wired to a real auth server, so that audited actions reach a real audit log."""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.auth.harness import SERVICE_TOKEN, AuthClient
from tests.crm.harness import CrmHarness, TenantClient
from tresor.auth.v1 import auth_pb2 as pb
from tresor_common.identity import generate_private_key_pem, load_private_key, public_key_pem
from tresor_crm.app import create_app
from tresor_crm.audit_client import AuditLog
from tresor_crm.config import CrmSettings
from tresor_crm.db import Database


@dataclass
class AuditedCrm:
    """The CRM app and the auth server whose audit log it writes to."""

    crm: CrmHarness
    auth: AuthClient
    app: Any

    async def tenant(self, roles: tuple[str, ...] = ("user",)) -> TenantClient:
        """A user of a tenant that exists in auth too (its audit log needs the tenant)."""
        tenant = await self.auth.tenant()
        return TenantClient(
            self.crm.http, self.crm.signing_key, tenant_id=uuid.UUID(tenant.id), roles=roles
        )

    async def audit_events(self, tenant_id: uuid.UUID, event: str) -> list[pb.AuditEvent]:
        response = await self.auth.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id=str(tenant_id), page_size=500)
        )
        return [e for e in response.events if e.event == event]


@pytest.fixture
async def audited(
    crm_database: tuple[str, str], start_auth: Callable[..., Any]
) -> AsyncIterator[AuditedCrm]:
    auth: AuthClient = await start_auth()
    owner, runtime = crm_database
    key = load_private_key(generate_private_key_pem())
    settings = CrmSettings(
        environment="development",
        database_url=runtime,
        migration_database_url=owner,
        identity_public_keys=[public_key_pem(key)],
        auth_address=auth.address,
        auth_service_token=SecretStr(SERVICE_TOKEN),
        auth_timeout_seconds=2.0,
    )
    database = await Database.open(runtime, size=4, timeout_seconds=5)
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://crm") as http:
        yield AuditedCrm(CrmHarness(http, key, database, owner, runtime), auth, app)
    audit: AuditLog | None = getattr(app.state, "audit_log", None)
    if audit is not None:
        await audit.close()
    await database.close()
