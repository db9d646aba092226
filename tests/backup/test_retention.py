"""Retention over a simulated year of daily snapshots."""

from datetime import UTC, date, datetime, timedelta

from tresor_backup.retention import snapshots_to_keep


def _year() -> list[tuple[str, datetime]]:
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    return [
        ((start + timedelta(days=i)).strftime("%Y%m%dT%H%M%SZ"), start + timedelta(days=i))
        for i in range(365)
    ]


def _ids(*days: date) -> set[str]:
    return {d.strftime("%Y%m%dT020000Z") for d in days}


def test_a_year_of_dailies_keeps_exactly_7_daily_4_weekly_12_monthly() -> None:
    keep = snapshots_to_keep(_year(), daily=7, weekly=4, monthly=12)
    daily = {date(2025, 12, d) for d in range(25, 32)}
    # 2025-12-31 is a Wednesday: its ISO week so far, then the three Sundays before.
    weekly = {date(2025, 12, 31), date(2025, 12, 28), date(2025, 12, 21), date(2025, 12, 14)}
    monthly = {
        date(2025, m, 1)
        + timedelta(days=31)
        - timedelta(days=(date(2025, m, 1) + timedelta(days=31)).day)
        for m in range(1, 13)
    }
    assert keep == _ids(*(daily | weekly | monthly))
    assert len(keep) == 20


def test_the_newest_verified_snapshot_is_never_pruned() -> None:
    year = _year()
    oldest = year[0][0]
    assert oldest not in snapshots_to_keep(year, daily=7, weekly=4, monthly=12)
    assert oldest in snapshots_to_keep(year, daily=7, weekly=4, monthly=12, newest_verified=oldest)


def test_zero_keeps_nothing_but_the_verified() -> None:
    assert snapshots_to_keep(_year(), daily=0, weekly=0, monthly=0) == set()
