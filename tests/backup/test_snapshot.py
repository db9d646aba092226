"""Snapshots: both databases, encrypted parts, a manifest with checksums, atomic publish."""

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.backup.crm_data import add_company_with_contacts
from tresor_backup import crypto, pg_store
from tresor_backup.snapshot import take_snapshot
from tresor_backup.store import MANIFEST, DirectoryStore


def test_snapshot_writes_encrypted_parts_and_a_manifest(
    sources: dict[str, str], store: DirectoryStore, operator_key: bytes
) -> None:
    add_company_with_contacts(sources["crm"], uuid.uuid4(), 5)
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)

    assert store.list_ids() == [result.snapshot_id]
    folder = store.root / result.snapshot_id
    manifest = json.loads((folder / MANIFEST).read_text())
    assert {part["database"] for part in manifest["parts"]} == {"auth", "crm"}
    for part in manifest["parts"]:
        data = (folder / part["name"]).read_bytes()
        assert data.startswith(crypto.MAGIC)
        assert b"COPY" not in data
        assert b"CREATE TABLE" not in data
        assert len(data) == part["size"]
    assert manifest["databases"]["crm"]["tables"]["public.contacts"]["rows"] == 5
    assert manifest["databases"]["crm"]["tables"]["public.companies"]["rows"] == 1
    assert manifest["databases"]["auth"]["postgresql_version"]
    assert manifest["tresor_version"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_checksums_do_not_depend_on_row_order(
    empty_database: Callable[[], str], tmp_path: Path
) -> None:
    first, second = empty_database(), empty_database()
    for url, order in ((first, "ASC"), (second, "DESC")):
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute(
                f"INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 50) i ORDER BY i {order}"
            )
    sums = []
    for url in (first, second):
        with psycopg.connect(url) as conn:
            sums.append(pg_store.table_checksums(conn))
    assert sums[0] == sums[1]
    with psycopg.connect(second) as conn:
        conn.execute("UPDATE t SET v = 'changed' WHERE id = 7")
    with psycopg.connect(second) as conn:
        assert pg_store.table_checksums(conn) != sums[0]


def test_tools_match_the_server(sources: dict[str, str]) -> None:
    with psycopg.connect(sources["auth"]) as conn:
        major = pg_store.server_major(conn)
    tools = pg_store.find_tools(major)
    assert tools.major >= major


def test_no_matching_pg_dump_is_a_clear_error() -> None:
    with pytest.raises(pg_store.PgToolError, match="no pg_dump of version 99"):
        pg_store.find_tools(99)
