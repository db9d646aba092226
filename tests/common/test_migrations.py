"""Migrations apply once, in order, and refuse a file changed after it was applied."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.backing import with_database
from tresor_common.migrations import MigrationError, apply_migrations


@pytest.fixture
def scratch_db(postgres_admin_url: str) -> Iterator[str]:
    name = f"tresor_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    yield with_database(postgres_admin_url, name)
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())


def test_applies_in_order_once(scratch_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_create.sql").write_text("CREATE TABLE t (a int);")
    (tmp_path / "0002_add.sql").write_text(
        "ALTER TABLE t ADD COLUMN b int; INSERT INTO t VALUES (1, 2);"
    )
    assert apply_migrations(scratch_db, tmp_path) == ["0001_create.sql", "0002_add.sql"]
    assert apply_migrations(scratch_db, tmp_path) == []
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT a, b FROM t").fetchall() == [(1, 2)]


def test_a_failing_migration_leaves_nothing_half_done(scratch_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_bad.sql").write_text("CREATE TABLE u (a int); SELECT * FROM missing_table;")
    with pytest.raises(psycopg.errors.UndefinedTable):
        apply_migrations(scratch_db, tmp_path)
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT to_regclass('u')").fetchone() == (None,)


def test_changed_migration_is_refused(scratch_db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_create.sql").write_text("CREATE TABLE t (a int);")
    apply_migrations(scratch_db, tmp_path)
    (tmp_path / "0001_create.sql").write_text("CREATE TABLE t (a bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(scratch_db, tmp_path)


def test_badly_named_file_is_refused(scratch_db: str, tmp_path: Path) -> None:
    (tmp_path / "create.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_description\.sql"):
        apply_migrations(scratch_db, tmp_path)
