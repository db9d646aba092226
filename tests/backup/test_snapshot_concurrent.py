"""Writes go on while a snapshot runs: the restored data is still consistent."""

import threading
import uuid
from collections.abc import Callable

import psycopg

from tresor_backup import pg_store
from tresor_backup.restore import restore_snapshot
from tresor_backup.snapshot import take_snapshot
from tresor_backup.store import DirectoryStore


def test_concurrent_parent_and_child_inserts_restore_consistently(
    sources: dict[str, str],
    store: DirectoryStore,
    operator_key: bytes,
    empty_database: Callable[[], str],
) -> None:
    tenant = uuid.uuid4()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        with psycopg.connect(sources["crm"], autocommit=True) as conn:
            while not stop.is_set():
                company, contact = uuid.uuid4(), uuid.uuid4()
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO companies (id, tenant_id, name) VALUES (%s, %s, 'Firma')",
                        (company, tenant),
                    )
                    conn.execute(
                        "INSERT INTO contacts (id, tenant_id, last_name, company_id) "
                        "VALUES (%s, %s, 'Name', %s)",
                        (contact, tenant, company),
                    )
                written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 20:
            stop.wait(0.01)
        result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    finally:
        stop.set()
        thread.join()
    targets = {"auth": empty_database(), "crm": empty_database()}
    restore_snapshot(
        store=store, snapshot_id=result.snapshot_id, operator_key=operator_key, targets=targets
    )

    with psycopg.connect(targets["crm"]) as conn:
        companies = conn.execute("SELECT count(*) FROM companies").fetchone()
        contacts = conn.execute("SELECT count(*) FROM contacts").fetchone()
        orphans = conn.execute(
            "SELECT count(*) FROM contacts c LEFT JOIN companies k ON k.id = c.company_id "
            "WHERE k.id IS NULL"
        ).fetchone()
        assert companies == contacts
        assert orphans == (0,)
        assert companies is not None
        assert companies[0] >= 20
        tables = pg_store.table_checksums(conn)
    # The counts in the manifest and the dump saw the same point in time.
    assert tables == result.manifest["databases"]["crm"]["tables"]
    assert written[0] > 20
