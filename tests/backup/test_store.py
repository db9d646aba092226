"""The directory store: staged snapshots are never listed; leftovers are cleaned up."""

from tresor_backup.store import MANIFEST, DirectoryStore


def test_a_staged_snapshot_is_listed_only_once_published(store: DirectoryStore) -> None:
    staging = store.staging("20250101T020000Z-abcd")
    (staging / "auth.dump.zst.enc").write_bytes(b"part")
    (staging / MANIFEST).write_bytes(b"{}")
    assert store.list_ids() == []

    store.publish("20250101T020000Z-abcd", staging)

    assert store.list_ids() == ["20250101T020000Z-abcd"]
    assert store.read("20250101T020000Z-abcd", "auth.dump.zst.enc") == b"part"


def test_cleanup_removes_leftovers_and_delete_removes_a_snapshot(store: DirectoryStore) -> None:
    staging = store.staging("20250101T020000Z-dead")
    (staging / "auth.dump.zst.enc").write_bytes(b"half")
    done = store.staging("20250102T020000Z-beef")
    (done / MANIFEST).write_bytes(b"{}")
    store.publish("20250102T020000Z-beef", done)

    assert store.cleanup() == [".tmp-20250101T020000Z-dead"]
    assert store.list_ids() == ["20250102T020000Z-beef"]
    store.delete("20250102T020000Z-beef")
    assert store.list_ids() == []
    assert list(store.root.iterdir()) == []
