"""Fixtures for the auth service: a migrated database per test and a real server."""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.auth.harness import AuthClient, channel, settings_for
from tests.backing import with_database
from tresor.auth.v1 import auth_pb2_grpc
from tresor_auth.config import AuthSettings
from tresor_auth.server import AuthServer, create_server, migrate

APP_ROLE = "tresor_auth_app"
APP_PASSWORD = "tresor-test-app"


@pytest.fixture(scope="session")
def auth_template(postgres_admin_url: str) -> Iterator[str]:
    """One migrated database per run, copied for each test (fast and isolated)."""
    name = f"tresor_auth_tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    url = with_database(postgres_admin_url, name)
    migrate(settings_for(database_url=url, migration_url=url, redis_url="redis://localhost"))
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        if not exists:
            conn.execute(
                f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'"
                " IN ROLE tresor_auth_runtime".encode()
            )
    yield name
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def auth_database(postgres_admin_url: str, auth_template: str) -> Iterator[tuple[str, str]]:
    """(owner URL, runtime-role URL) of a fresh database of this test's own."""
    name = f"tresor_auth_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{auth_template}"'.encode())
    owner = with_database(postgres_admin_url, name)
    runtime = with_database(postgres_admin_url, name, user=APP_ROLE, password=APP_PASSWORD)
    yield owner, runtime
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def make_settings(auth_database: tuple[str, str], redis_url: str) -> Callable[..., AuthSettings]:
    owner, runtime = auth_database
    prefix = f"test:{uuid.uuid4().hex}:"

    def build(**overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {
            "database_url": runtime,
            "migration_url": owner,
            "redis_url": redis_url,
            "redis_key_prefix": prefix,
        }
        values.update(overrides)
        return settings_for(**values)

    return build


@pytest.fixture
async def start_auth(
    make_settings: Callable[..., AuthSettings],
) -> AsyncIterator[Callable[..., Any]]:
    """Start a real auth server (port 0) with these setting overrides; stopped after the test."""
    running: list[tuple[AuthServer, Any]] = []

    async def start(**overrides: Any) -> AuthClient:
        settings = make_settings(**overrides)
        server = await create_server(settings, "127.0.0.1:0")
        address = f"127.0.0.1:{server.port}"
        chan = channel(address)
        running.append((server, chan))
        return AuthClient(auth_pb2_grpc.AuthServiceStub(chan), address, settings, server)

    yield start
    for server, chan in running:
        await chan.close(None)
        await server.stop(grace=0)


@pytest.fixture
async def auth(start_auth: Callable[..., Any]) -> AuthClient:
    client: AuthClient = await start_auth()
    return client
