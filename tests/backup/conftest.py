"""Fixtures for the backup tests: fresh auth and crm databases, empty targets, a key."""

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.backing import with_database
from tresor_backup.store import DirectoryStore


@pytest.fixture
def operator_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def key_text(operator_key: bytes) -> str:
    return base64.b64encode(operator_key).decode()


@pytest.fixture
def sources(auth_database: tuple[str, str], crm_database: tuple[str, str]) -> dict[str, str]:
    """Owner (superuser) URLs of this test's own migrated auth and crm databases."""
    return {"auth": auth_database[0], "crm": crm_database[0]}


@pytest.fixture
def empty_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    names: list[str] = []

    def create() -> str:
        name = f"tresor_bk_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        names.append(name)
        return with_database(postgres_admin_url, name)

    yield create
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "snapshots")
