"""The CRM's export pages against a real backup service, real auth and the CRM's gRPC API.

An admin asks for the tenant's export in the web UI, watches it finish and downloads the
ZIP through the CRM; users, other tenants, forged forms and an unreachable backup service
are refused with the CRM's own pages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import io
import os
import re
import secrets
import socket
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.auth.harness import SERVICE_TOKEN
from tests.backup.export_harness import ExportWorld, Tenant, export_world
from tests.crm.harness import CrmHarness, TenantClient
from tresor_backup.config import BackupSettings
from tresor_backup.server import BackupServer, create_server
from tresor_common.identity import public_key_pem
from tresor_crm.app import create_app
from tresor_crm.backup_client import BackupClient
from tresor_crm.config import CrmSettings

STATUS_LINK = re.compile(r"/admin/exports/([0-9a-f-]{36})\?started=1$")


@dataclass
class Pages:
    """The CRM app (talking to `backup_address`) and the world behind the backup service."""

    world: ExportWorld
    backup: BackupServer
    crm: CrmHarness
    backup_token: str

    @property
    def backup_address(self) -> str:
        return f"127.0.0.1:{self.backup.port}"

    @contextlib.asynccontextmanager
    async def client(self, backup_address: str | None) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client of a CRM app whose backup settings point at `backup_address`."""
        settings = CrmSettings(
            environment="development",
            database_url=self.crm.runtime_url,
            identity_public_keys=[public_key_pem(self.crm.signing_key)],
            backup_address=backup_address,
            backup_service_token=SecretStr(self.backup_token) if backup_address else None,
            backup_timeout_seconds=2.0,
        )
        app = create_app(settings, self.crm.database)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://crm") as http:
                yield http
        finally:
            backup: BackupClient | None = getattr(app.state, "backup_client", None)
            if backup is not None:
                await backup.close()


@pytest.fixture
async def pages(
    start_auth: Callable[..., Any], crm: CrmHarness, tmp_path: Path, postgres_admin_url: str
) -> AsyncIterator[Pages]:
    async with export_world(start_auth, crm, tmp_path / "exports", postgres_admin_url) as world:
        token = secrets.token_urlsafe(24)
        settings = BackupSettings(
            environment="development",
            auth_database_url=postgres_admin_url,
            crm_database_url=crm.owner_url,
            key=SecretStr(base64.b64encode(os.urandom(32)).decode()),
            directory=tmp_path / "snapshots",
            service_tokens=SecretStr(token),
            export_directory=tmp_path / "exports",
            export_crm_database_url=world.documents_url,
            crm_grpc_address=world.crm_address,
            crm_service_token=SecretStr(world.crm_token),
            auth_address=world.auth.address,
            auth_service_token=SecretStr(SERVICE_TOKEN),
        )
        server = await create_server(settings, "127.0.0.1:0")
        try:
            yield Pages(world, server, crm, token)
        finally:
            await server.stop(grace=0)


def person(http: httpx.AsyncClient, pages: Pages, tenant: Tenant, *, admin: bool) -> TenantClient:
    user = tenant.admin if admin else tenant.user
    return TenantClient(
        http,
        pages.crm.signing_key,
        tenant_id=uuid.UUID(tenant.id),
        user_id=uuid.UUID(user.id),
        username=user.username,
        roles=("admin",) if admin else ("user",),
    )


def csrf(client: TenantClient) -> str:
    return "csrf-" + client.link


async def request_export(client: TenantClient, button: str = "Export anfordern") -> str:
    page = await client.get("admin/exports")
    assert page.status_code == 200, page.text
    assert button in page.text
    assert f'action="{client.path("admin/exports")}"' in page.text
    assert 'name="csrf"' in page.text
    response = await client.post(
        "admin/exports", data={"csrf": csrf(client)}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert response.status_code == 303, response.text
    match = STATUS_LINK.search(response.headers["location"])
    assert match
    assert response.headers["location"].startswith(f"/s/{client.link}/")
    return match.group(1)


async def wait_done(
    client: TenantClient, export_id: str, done: str = "Fertig", failed: str = "Fehlgeschlagen"
) -> httpx.Response:
    for _ in range(200):
        page = await client.get(f"admin/exports/{export_id}")
        assert page.status_code == 200, page.text
        if done in page.text or failed in page.text:
            return page
        assert page.headers.get("refresh") == "3"
        await asyncio.sleep(0.05)
    pytest.fail("the export did not finish")


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def test_an_admin_requests_watches_and_downloads_the_export(
    pages: Pages, tmp_path: Path
) -> None:
    world = pages.world
    alpha = await world.tenant("alpha")
    await world.seed(alpha, "Alpha", contacts=3)
    # Bigger than one chunk of OpenExport: the download crosses chunk boundaries.
    await world.document(
        alpha, record=("contact", alpha.contacts[0]), filename="vertrag.pdf", size=700_000
    )
    async with pages.client(pages.backup_address) as http:
        admin = person(http, pages, alpha, admin=True)
        export_id = await request_export(admin)
        page = await wait_done(admin, export_id)
        assert "Fertig" in page.text
        assert "Herunterladbar bis" in page.text
        assert "refresh" not in page.headers
        link = admin.path(f"admin/exports/{export_id}/download")
        assert f'href="{link}"' in page.text
        assert "<script>" not in page.text
        assert "style=" not in page.text

        download = await admin.get(f"admin/exports/{export_id}/download")
        assert download.status_code == 200
        assert download.headers["content-type"] == "application/zip"
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["cache-control"] == "no-store"
        disposition = download.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert f"filename*=UTF-8''tresor-export-{export_id}.zip" in disposition
        assert int(download.headers["content-length"]) == len(download.content)

    path = tmp_path / "download.zip"
    path.write_bytes(download.content)
    with zipfile.ZipFile(path) as archive:
        assert "contacts.csv" in archive.namelist()
        text = archive.read("contacts.csv").decode("utf-8-sig")
        documents = [name for name in archive.namelist() if name.endswith("/vertrag.pdf")]
        assert len(documents) == 1
        assert hashlib.sha256(archive.read(documents[0])).hexdigest() == next(
            digest for _, digest, _ in alpha.documents.values()
        )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3

    events = await world.audit_events(alpha.id)
    requested = [e for e in events if e.event == "export.requested"]
    downloaded = [e for e in events if e.event == "export.downloaded"]
    assert len(requested) == 1
    assert len(downloaded) == 1
    assert requested[0].actor_user_id == downloaded[0].actor_user_id == alpha.admin.id
    assert requested[0].client_ip == "203.0.113.9"


async def test_english_texts(pages: Pages) -> None:
    alpha = await pages.world.tenant("alpha")
    async with pages.client(pages.backup_address) as http:
        admin = person(http, pages, alpha, admin=True)
        chosen = await admin.post("language", data={"csrf": csrf(admin), "lang": "en"})
        assert chosen.status_code == 303
        page = await admin.get("admin/exports")
        assert "Request an export" in page.text
        assert "Export anfordern" not in page.text
        export_id = await request_export(admin, button="Request an export")
        page = await wait_done(admin, export_id, done="Done", failed="Failed")
        assert "Downloadable until" in page.text
        assert "Download the ZIP" in page.text


async def test_a_user_gets_403_on_every_export_route(pages: Pages) -> None:
    alpha = await pages.world.tenant("alpha")
    async with pages.client(pages.backup_address) as http:
        admin = person(http, pages, alpha, admin=True)
        user = person(http, pages, alpha, admin=False)
        export_id = await request_export(admin)
        await wait_done(admin, export_id)
        for method, rest in (
            ("GET", "admin/exports"),
            ("POST", "admin/exports"),
            ("GET", f"admin/exports/{export_id}"),
            ("GET", f"admin/exports/{export_id}/download"),
        ):
            data = {"csrf": csrf(user)} if method == "POST" else None
            response = await user.request(method, rest, data=data)
            assert response.status_code == 403, (method, rest)
            assert response.headers["content-type"].startswith("text/html")
    events = [e.event for e in await pages.world.audit_events(alpha.id)]
    assert events.count("export.requested") == 1
    assert "export.downloaded" not in events


async def test_another_tenants_or_a_forged_export_id_is_not_found(pages: Pages) -> None:
    world = pages.world
    alpha, bravo = await world.tenant("alpha"), await world.tenant("bravo")
    async with pages.client(pages.backup_address) as http:
        alpha_admin = person(http, pages, alpha, admin=True)
        bravo_admin = person(http, pages, bravo, admin=True)
        export_id = await request_export(alpha_admin)
        await wait_done(alpha_admin, export_id)
        for wanted in (export_id, str(uuid.uuid4()), "not-an-id", "..%2F..%2Fetc"):
            for rest in (f"admin/exports/{wanted}", f"admin/exports/{wanted}/download"):
                response = await bravo_admin.get(rest)
                assert response.status_code == 404, (rest, response.text)
                assert response.headers["content-type"].startswith("text/html")
    assert "export.downloaded" not in [e.event for e in await world.audit_events(alpha.id)]
    assert "export.downloaded" not in [e.event for e in await world.audit_events(bravo.id)]


async def test_a_request_without_the_csrf_token_is_refused(pages: Pages) -> None:
    alpha = await pages.world.tenant("alpha")
    async with pages.client(pages.backup_address) as http:
        admin = person(http, pages, alpha, admin=True)
        for data in ({}, {"csrf": "forged"}):
            response = await admin.post("admin/exports", data=data)
            assert response.status_code == 403
            assert "text/html" in response.headers["content-type"]
    assert "export.requested" not in [e.event for e in await pages.world.audit_events(alpha.id)]


async def test_an_unreachable_backup_service_gives_the_503_page(pages: Pages) -> None:
    alpha = await pages.world.tenant("alpha")
    async with pages.client(closed_port()) as http:
        admin = person(http, pages, alpha, admin=True)
        export_id = uuid.uuid4()
        for method, rest in (
            ("POST", "admin/exports"),
            ("GET", f"admin/exports/{export_id}"),
            ("GET", f"admin/exports/{export_id}/download"),
        ):
            data = {"csrf": csrf(admin)} if method == "POST" else None
            response = await admin.request(method, rest, data=data)
            assert response.status_code == 503, (method, rest)
            assert "Vorübergehend nicht verfügbar" in response.text
            assert "Traceback" not in response.text
        # The page itself still answers.
        assert (await admin.get("admin/exports")).status_code == 200


async def test_without_backup_settings_exports_are_not_available(pages: Pages) -> None:
    alpha = await pages.world.tenant("alpha")
    async with pages.client(None) as http:
        admin = person(http, pages, alpha, admin=True)
        page = await admin.get("admin/exports")
        assert page.status_code == 200
        assert "Exporte sind in dieser Installation nicht verfügbar." in page.text
        assert "Export anfordern" not in page.text
        refused = await admin.post("admin/exports", data={"csrf": csrf(admin)})
        assert refused.status_code == 503
