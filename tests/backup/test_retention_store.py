"""Pruning a directory store over a simulated year of daily snapshots."""

import json
from datetime import UTC, datetime, timedelta

from tresor_backup.retention import prune, snapshots_to_keep
from tresor_backup.snapshot import snapshot_time
from tresor_backup.store import MANIFEST, VERIFIED, DirectoryStore


def test_prune_deletes_exactly_what_the_policy_drops_and_keeps_the_newest_verified(
    store: DirectoryStore,
) -> None:
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    ids = []
    for day in range(365):
        snapshot_id = (start + timedelta(days=day)).strftime("%Y%m%dT%H%M%SZ") + "-0000"
        staging = store.staging(snapshot_id)
        (staging / MANIFEST).write_bytes(b"{}")
        store.publish(snapshot_id, staging)
        ids.append(snapshot_id)
    # Only an old snapshot ever verified; a newer one failed its verification.
    store.write(ids[40], VERIFIED, json.dumps({"ok": True}).encode())
    store.write(ids[300], VERIFIED, json.dumps({"ok": False}).encode())
    expected = snapshots_to_keep(
        [(i, snapshot_time(i)) for i in ids], daily=7, weekly=4, monthly=12
    ) | {ids[40]}

    dry = prune(store, daily=7, weekly=4, monthly=12, dry_run=True)
    assert len(store.list_ids()) == 365
    result = prune(store, daily=7, weekly=4, monthly=12)

    assert dry.deleted == result.deleted
    assert set(store.list_ids()) == expected
    assert len(expected) == 21
    assert set(result.deleted) == set(ids) - expected
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]
