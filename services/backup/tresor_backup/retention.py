"""Which snapshots to keep: the newest of each of the last N days, ISO weeks and months.

A pure function over snapshot times; the newest verified snapshot is always kept.
"""

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

from tresor_backup.snapshot import snapshot_time
from tresor_backup.store import VERIFIED, SnapshotStore, StoreError


def _newest_per_period(
    snapshots: list[tuple[str, datetime]], count: int, period: Callable[[datetime], Hashable]
) -> set[str]:
    kept: set[str] = set()
    seen: set[Hashable] = set()
    for snapshot_id, taken in sorted(snapshots, key=lambda item: item[1], reverse=True):
        key = period(taken)
        if key in seen:
            continue
        if len(seen) >= count:
            break
        seen.add(key)
        kept.add(snapshot_id)
    return kept


def snapshots_to_keep(
    snapshots: list[tuple[str, datetime]],
    *,
    daily: int,
    weekly: int,
    monthly: int,
    newest_verified: str | None = None,
) -> set[str]:
    keep = _newest_per_period(snapshots, daily, lambda t: t.date())
    keep |= _newest_per_period(snapshots, weekly, lambda t: t.isocalendar()[:2])
    keep |= _newest_per_period(snapshots, monthly, lambda t: (t.year, t.month))
    if newest_verified is not None:
        keep.add(newest_verified)
    return keep


def newest_verified(store: SnapshotStore, ids: list[str]) -> str | None:
    """The newest snapshot whose recorded verification succeeded."""
    for snapshot_id in sorted(ids, reverse=True):
        try:
            record = json.loads(store.read(snapshot_id, VERIFIED))
        except (StoreError, ValueError):
            continue
        if record.get("ok") is True:
            return snapshot_id
    return None


@dataclass(frozen=True)
class PruneResult:
    kept: list[str]
    deleted: list[str]


def prune(
    store: SnapshotStore, *, daily: int, weekly: int, monthly: int, dry_run: bool = False
) -> PruneResult:
    ids = store.list_ids()
    keep = snapshots_to_keep(
        [(snapshot_id, snapshot_time(snapshot_id)) for snapshot_id in ids],
        daily=daily,
        weekly=weekly,
        monthly=monthly,
        newest_verified=newest_verified(store, ids),
    )
    doomed = [snapshot_id for snapshot_id in ids if snapshot_id not in keep]
    if not dry_run:
        for snapshot_id in doomed:
            store.delete(snapshot_id)
    return PruneResult(sorted(keep), doomed)
