"""Restore: every table equal, refusals that name the problem, erasures applied again."""

import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.backup.crm_data import add_company_with_contacts, contact_ids, erase
from tresor_backup import cli, pg_store
from tresor_backup.restore import (
    RestoreError,
    check_snapshot,
    pending_erasures_path,
    reapply_pending_erasures,
    restore_snapshot,
)
from tresor_backup.snapshot import encode_manifest, part_name, take_snapshot
from tresor_backup.store import MANIFEST, VERIFIED, DirectoryStore
from tresor_backup.verify import verify_snapshot


def _checksums(url: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(url) as conn:
        return pg_store.table_checksums(conn)


def test_snapshot_then_restore_gives_every_row_back(
    sources: dict[str, str],
    store: DirectoryStore,
    operator_key: bytes,
    empty_database: Callable[[], str],
) -> None:
    add_company_with_contacts(sources["crm"], uuid.uuid4(), 7)
    with psycopg.connect(sources["crm"]) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, data bytea)")
        conn.execute("INSERT INTO blobs VALUES (1, %s)", (os.urandom(300_000),))
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    targets = {"auth": empty_database(), "crm": empty_database()}

    restored = restore_snapshot(
        store=store, snapshot_id=result.snapshot_id, operator_key=operator_key, targets=targets
    )

    assert restored.databases == ["auth", "crm"]
    for name in ("auth", "crm"):
        assert _checksums(targets[name]) == _checksums(sources[name])
        assert _checksums(targets[name]) == result.manifest["databases"][name]["tables"]


def test_a_contact_erased_after_the_snapshot_stays_erased(
    sources: dict[str, str], store: DirectoryStore, operator_key: bytes
) -> None:
    tenant = uuid.uuid4()
    kept, erased = add_company_with_contacts(sources["crm"], tenant, 2)
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    erase(sources["crm"], tenant, erased)

    restored = restore_snapshot(
        store=store,
        snapshot_id=result.snapshot_id,
        operator_key=operator_key,
        targets=sources,
        force=True,
    )

    assert restored.erasures_reapplied == 1
    assert contact_ids(sources["crm"]) == {kept}
    with psycopg.connect(sources["crm"]) as conn:
        row = conn.execute("SELECT count(*) FROM erasures WHERE record_id = %s", (erased,))
        assert row.fetchone() == (1,)
        search = conn.execute(
            "SELECT count(*) FROM search_entries WHERE record_id = %s", (erased,)
        ).fetchone()
        assert search == (0,)


def test_non_empty_targets_are_refused_without_force(
    sources: dict[str, str], store: DirectoryStore, operator_key: bytes
) -> None:
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    with pytest.raises(RestoreError, match="not empty: auth"):
        restore_snapshot(
            store=store, snapshot_id=result.snapshot_id, operator_key=operator_key, targets=sources
        )


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing"])
def test_a_damaged_or_missing_part_is_named_and_nothing_is_restored(
    sources: dict[str, str],
    store: DirectoryStore,
    operator_key: bytes,
    empty_database: Callable[[], str],
    damage: str,
) -> None:
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    path = store.root / result.snapshot_id / part_name("crm")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:-100]))
    else:
        path.unlink()
    targets = {"auth": empty_database(), "crm": empty_database()}

    with pytest.raises(RestoreError, match=part_name("crm")):
        restore_snapshot(
            store=store, snapshot_id=result.snapshot_id, operator_key=operator_key, targets=targets
        )

    for url in targets.values():
        with psycopg.connect(url) as conn:
            assert pg_store.is_empty(conn)


def test_a_wrong_key_is_named_and_nothing_is_restored(
    sources: dict[str, str],
    store: DirectoryStore,
    operator_key: bytes,
    empty_database: Callable[[], str],
) -> None:
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    targets = {"auth": empty_database(), "crm": empty_database()}
    with pytest.raises(RestoreError, match="wrong key"):
        restore_snapshot(
            store=store,
            snapshot_id=result.snapshot_id,
            operator_key=os.urandom(32),
            targets=targets,
        )
    with psycopg.connect(targets["auth"]) as conn:
        assert pg_store.is_empty(conn)


def test_verify_restores_into_scratch_databases_and_records_the_outcome(
    sources: dict[str, str], store: DirectoryStore, operator_key: bytes
) -> None:
    add_company_with_contacts(sources["crm"], uuid.uuid4(), 3)
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)

    verified = verify_snapshot(
        store=store, snapshot_id=result.snapshot_id, operator_key=operator_key, servers=sources
    )

    assert verified.ok, verified.problems
    record = json.loads(store.read(result.snapshot_id, VERIFIED))
    assert record["ok"] is True
    assert store.list_ids() == [result.snapshot_id]


def test_an_altered_manifest_is_refused(
    sources: dict[str, str], store: DirectoryStore, operator_key: bytes
) -> None:
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    path = store.root / result.snapshot_id / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["parts"][0]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(RestoreError, match="damaged or altered"):
        check_snapshot(store, result.snapshot_id, operator_key)


def test_verify_records_a_mismatch_by_table(
    sources: dict[str, str], store: DirectoryStore, operator_key: bytes
) -> None:
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    body = dict(result.manifest)
    body["databases"]["crm"]["tables"]["public.contacts"]["rows"] = 99
    (store.root / result.snapshot_id / MANIFEST).write_bytes(encode_manifest(body, operator_key))

    verified = verify_snapshot(
        store=store, snapshot_id=result.snapshot_id, operator_key=operator_key, servers=sources
    )

    assert not verified.ok
    assert any("crm.public.contacts" in problem for problem in verified.problems)
    assert json.loads(store.read(result.snapshot_id, VERIFIED))["ok"] is False


def test_erasures_survive_a_crash_between_pg_restore_and_reapplying(
    sources: dict[str, str],
    store: DirectoryStore,
    operator_key: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = uuid.uuid4()
    kept, erased = add_company_with_contacts(sources["crm"], tenant, 2)
    result = take_snapshot(databases=sources, store=store, operator_key=operator_key)
    erase(sources["crm"], tenant, erased)
    work = tmp_path / "work"
    pending = pending_erasures_path(work, sources["crm"])

    class Crash(BaseException):
        pass

    def crash(url: str, records: list[dict[str, object]]) -> int:
        raise Crash  # the process dies after pg_restore, before the erasures are applied

    with monkeypatch.context() as patched:
        patched.setattr(pg_store, "reapply_erasures", crash)
        with pytest.raises(Crash):
            restore_snapshot(
                store=store,
                snapshot_id=result.snapshot_id,
                operator_key=operator_key,
                targets=sources,
                force=True,
                work_dir=work,
            )
    # The snapshot brought the erased person back, and the erasure itself is gone from
    # the database; only the pending file remembers it.
    assert contact_ids(sources["crm"]) == {kept, erased}
    assert pg_store.read_erasures(sources["crm"]) == []
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    assert [str(r["record_id"]) for r in json.loads(pending.read_text())["erasures"]] == [
        str(erased)
    ]

    # By hand (tresorctl backup reapply-erasures --from FILE) ...
    saved = pending.read_bytes()
    assert reapply_pending_erasures(pending, sources["crm"]) == 1
    assert contact_ids(sources["crm"]) == {kept}
    assert not pending.exists()

    # ... or picked up by the next restore of the same database.
    pending.write_bytes(saved)
    again = restore_snapshot(
        store=store,
        snapshot_id=result.snapshot_id,
        operator_key=operator_key,
        targets=sources,
        force=True,
        work_dir=work,
    )
    assert again.erasures_reapplied == 1
    assert contact_ids(sources["crm"]) == {kept}
    assert not pending.exists()


def test_tresorctl_reapply_erasures_arguments() -> None:
    args = cli.tresorctl_parser().parse_args(
        ["backup", "reapply-erasures", "--from", "/tmp/erasures-pending-crm.json"]  # noqa: S108
    )
    assert (args.command, args.source, args.crm_url) == (
        "reapply-erasures",
        Path("/tmp/erasures-pending-crm.json"),  # noqa: S108
        None,
    )
