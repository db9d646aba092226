"""Fixtures for the CRM: a migrated database per test, the app, signed identities."""

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest

from tests.backing import with_database
from tests.crm.harness import CrmHarness
from tresor_common.identity import generate_private_key_pem, load_private_key, public_key_pem
from tresor_common.migrations import apply_migrations
from tresor_crm.app import create_app
from tresor_crm.config import CrmSettings
from tresor_crm.db import Database
from tresor_crm.server import MIGRATIONS

CRM_APP_ROLE = "tresor_crm_app"
CRM_APP_PASSWORD = "tresor-test-crm"


@pytest.fixture(scope="session")
def crm_template(postgres_admin_url: str) -> Iterator[str]:
    name = f"tresor_crm_tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    apply_migrations(with_database(postgres_admin_url, name), MIGRATIONS)
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (CRM_APP_ROLE,)
        ).fetchone()
        if not exists:
            conn.execute(
                f"CREATE ROLE {CRM_APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS "
                f"PASSWORD '{CRM_APP_PASSWORD}' IN ROLE tresor_crm_runtime".encode()
            )
    yield name
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def crm_database(postgres_admin_url: str, crm_template: str) -> Iterator[tuple[str, str]]:
    """(owner URL, runtime-role URL) of a fresh CRM database of this test's own."""
    name = f"tresor_crm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{crm_template}"'.encode())
    yield (
        with_database(postgres_admin_url, name),
        with_database(postgres_admin_url, name, user=CRM_APP_ROLE, password=CRM_APP_PASSWORD),
    )
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
async def crm(crm_database: tuple[str, str]) -> AsyncIterator[CrmHarness]:
    owner, runtime = crm_database
    signing_pem = generate_private_key_pem()
    key = load_private_key(signing_pem)
    settings = CrmSettings(
        environment="development",
        database_url=runtime,
        migration_database_url=owner,
        identity_public_keys=[public_key_pem(key)],
    )
    database = await Database.open(runtime, size=4, timeout_seconds=5)
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://crm") as http:
        yield CrmHarness(http, key, database, owner, runtime)
    await database.close()
