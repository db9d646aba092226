"""The export against real servers: auth (gRPC), the CRM's gRPC API, PostgreSQL.

Tenants exist in auth (users, audit log) and in the CRM database (records and
documents, written straight into the tables, chunked like the CRM does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from grpc import aio
from pydantic import SecretStr

from tests.auth.harness import SERVICE_TOKEN, AuthClient
from tests.backing import with_database
from tests.crm.harness import CrmHarness
from tresor.auth.v1 import auth_pb2
from tresor_backup.export import ExportService
from tresor_backup.export_sources import AuthGateway, CrmDocuments, CrmRecords, ExportSourcesImpl
from tresor_common.identity import public_key_pem
from tresor_crm.config import CrmSettings
from tresor_crm.grpc_server import CrmGrpcServer, create_grpc_server

EXPORT_ROLE = "tresor_backup_export"
EXPORT_PASSWORD = "tresor-test-backup-export"
CHUNK = 256 * 1024
MB = 1024 * 1024


def export_role_url(owner_url: str, postgres_admin_url: str) -> str:
    """The read-only backup export role on this CRM database (created once per cluster)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (EXPORT_ROLE,))
        if not exists.fetchone():
            conn.execute(
                f"CREATE ROLE {EXPORT_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS "
                f"PASSWORD '{EXPORT_PASSWORD}'".encode()
            )
        conn.execute(
            f"GRANT SELECT ON documents, document_chunks, contacts, companies, deals "
            f"TO {EXPORT_ROLE}".encode()
        )
        conn.execute(f"GRANT EXECUTE ON FUNCTION current_tenant() TO {EXPORT_ROLE}".encode())
        name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None
    return with_database(postgres_admin_url, name[0], user=EXPORT_ROLE, password=EXPORT_PASSWORD)


@dataclass
class Tenant:
    """One tenant's data as written, to compare the export against."""

    id: str
    admin: auth_pb2.User
    user: auth_pb2.User
    companies: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    deals: list[str] = field(default_factory=list)
    activities: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    # document id -> (filename, sha256, size)
    documents: dict[str, tuple[str, str, int]] = field(default_factory=dict)


@dataclass
class ExportWorld:
    auth: AuthClient
    crm: CrmHarness
    crm_grpc: CrmGrpcServer
    crm_token: str
    documents_url: str
    directory: Path
    channels: list[aio.Channel] = field(default_factory=list)

    @property
    def crm_address(self) -> str:
        return f"127.0.0.1:{self.crm_grpc.port}"

    def service(self, **options: Any) -> ExportService:
        crm_channel = aio.insecure_channel(self.crm_address)
        auth_channel = AuthGateway.channel(self.auth.address, SERVICE_TOKEN)
        self.channels += [crm_channel, auth_channel]
        gateway = AuthGateway(auth_channel, 10.0)
        sources = ExportSourcesImpl(
            CrmRecords(crm_channel, self.crm_token), CrmDocuments(self.documents_url), gateway
        )
        return ExportService(directory=self.directory, sources=sources, audit=gateway, **options)

    async def tenant(self, label: str) -> Tenant:
        tenant = await self.auth.tenant()
        admin = await self.auth.user(tenant, f"{label}-admin", roles=(auth_pb2.ROLE_ADMIN,))
        user = await self.auth.user(tenant, f"{label}-user")
        return Tenant(tenant.id, admin, user)

    async def audit_events(self, tenant_id: str) -> list[auth_pb2.AuditEvent]:
        response = await self.auth.stub.ListAuditEvents(
            auth_pb2.ListAuditEventsRequest(tenant_id=tenant_id, page_size=500)
        )
        return list(response.events)

    @contextlib.asynccontextmanager
    async def bound(self, tenant: Tenant) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with await psycopg.AsyncConnection.connect(self.crm.owner_url) as conn:
            await conn.execute("SELECT set_config('tresor.tenant_id', %s, false)", (tenant.id,))
            yield conn
            await conn.commit()

    async def seed(
        self, tenant: Tenant, label: str, *, contacts: int = 3, formula_name: bool = False
    ) -> None:
        """A company, `contacts` contacts, a deal, a note and a task of `label`."""
        company, deal, stage = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        activity, task = uuid.uuid4(), uuid.uuid4()
        async with self.bound(tenant) as conn:
            await conn.execute(
                "INSERT INTO companies (id, name, city, tags) VALUES (%s, %s, 'Köln', %s)",
                (company, f"{label} Maschinenbau GmbH", [label.lower()]),
            )
            await conn.execute(
                "INSERT INTO contacts (id, first_name, last_name, company_id, emails) "
                "SELECT gen_random_uuid(), 'Anna', %s::text || ' ' || n::text, %s, "
                "       ARRAY[lower(%s::text) || n::text || '@example.de'] "
                "  FROM generate_series(1, %s) AS n",
                (f"{label}-Kontakt", company, label, contacts),
            )
            if formula_name:
                await conn.execute(
                    "INSERT INTO contacts (id, first_name, last_name) VALUES (%s, '@SUM(A1)', %s)",
                    (uuid.uuid4(), '=HYPERLINK("http://evil.example","x")'),
                )
            rows = await conn.execute(
                "SELECT id FROM contacts WHERE tenant_id = current_tenant() ORDER BY id"
            )
            tenant.contacts = [str(row[0]) for row in await rows.fetchall()]
            await conn.execute(
                "INSERT INTO pipeline_stages (id, name, position) VALUES (%s, 'Angebot', 1)",
                (stage,),
            )
            await conn.execute(
                "INSERT INTO deals (id, title, company_id, value_cents, stage_id) "
                "VALUES (%s, %s, %s, 1250000, %s)",
                (deal, f"{label}-Wartungsvertrag", company, stage),
            )
            await conn.execute(
                "INSERT INTO activities (id, kind, body, author_name, company_id) "
                "VALUES (%s, 'call', %s, 'alice', %s)",
                (activity, f'{label}: Rückruf vereinbart; "Angebot"\nzweite Zeile', company),
            )
            await conn.execute(
                "INSERT INTO tasks (id, title, due_date, deal_id) "
                "VALUES (%s, %s, '2027-01-15', %s)",
                (task, f"{label}-Angebot schicken", deal),
            )
        tenant.companies = [str(company)]
        tenant.deals, tenant.activities, tenant.tasks = [str(deal)], [str(activity)], [str(task)]

    async def document(
        self,
        tenant: Tenant,
        *,
        record: tuple[str, str],
        filename: str,
        size: int,
        marker: bytes = b"",
    ) -> str:
        """A document of `size` random bytes (starting with `marker`), in 256 KiB chunks."""
        document_id = uuid.uuid4()
        column = {"contact": "contact_id", "company": "company_id", "deal": "deal_id"}[record[0]]
        digest = hashlib.sha256()
        async with self.bound(tenant) as conn:
            await conn.execute(
                f"INSERT INTO documents (id, filename, content_type, {column}) "
                "VALUES (%s, %s, 'application/octet-stream', %s)",
                (document_id, filename, record[1]),
            )
            written, seq = 0, 0
            while written < size:
                data = os.urandom(min(CHUNK, size - written))
                if seq == 0 and marker:
                    data = (marker + data)[: len(data)]
                digest.update(data)
                await conn.execute(
                    "INSERT INTO document_chunks (document_id, seq, data) VALUES (%s, %s, %s)",
                    (document_id, seq, data),
                )
                written += len(data)
                seq += 1
            await conn.execute(
                "UPDATE documents SET size_bytes = %s, sha256 = %s, complete = true WHERE id = %s",
                (size, digest.hexdigest(), document_id),
            )
        tenant.documents[str(document_id)] = (filename, digest.hexdigest(), size)
        return str(document_id)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close(None)


@contextlib.asynccontextmanager
async def export_world(
    start_auth: Callable[..., Any], crm: CrmHarness, directory: Path, postgres_admin_url: str
) -> AsyncIterator[ExportWorld]:
    auth: AuthClient = await start_auth()
    token = secrets.token_urlsafe(24)
    settings = CrmSettings(
        environment="development",
        database_url=crm.runtime_url,
        identity_public_keys=[public_key_pem(crm.signing_key)],
        grpc_enabled=True,
        grpc_service_tokens=SecretStr(token),
    )
    # Small batches: the stream crosses many batch boundaries.
    server = await create_grpc_server(settings, crm.database, "127.0.0.1:0", stream_batch_size=50)
    world = ExportWorld(
        auth,
        crm,
        server,
        token,
        export_role_url(crm.owner_url, postgres_admin_url),
        directory,
    )
    try:
        yield world
    finally:
        await world.close()
        await server.stop(grace=0)
