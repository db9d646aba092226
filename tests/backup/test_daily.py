"""The daily run: when it runs (injected clock), what it records, and tresorctl."""

import asyncio
import json
import logging
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from tests.backup.test_backup_grpc import Backup, backup  # noqa: F401 - the fixture
from tresor_backup import cli
from tresor_backup.config import BackupSettings
from tresor_backup.daily import RunLog, RunRecord, Scheduler, next_run, run_daily
from tresor_backup.store import DirectoryStore

BERLIN = ZoneInfo("Europe/Berlin")
AT = time(2, 30)


def test_next_run_is_the_next_local_half_past_two() -> None:
    # Summer (CEST, +02:00) and winter (CET, +01:00).
    assert next_run(datetime(2026, 6, 1, 10, 0, tzinfo=UTC), AT, BERLIN) == datetime(
        2026, 6, 2, 0, 30, tzinfo=UTC
    )
    assert next_run(datetime(2026, 12, 1, 0, 0, tzinfo=UTC), AT, BERLIN) == datetime(
        2026, 12, 1, 1, 30, tzinfo=UTC
    )
    # Exactly at the time: the next day, never twice.
    due = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
    assert next_run(due, AT, BERLIN) == due + timedelta(days=1)


def test_next_run_over_the_clock_changes() -> None:
    # 29 March 2026: 02:30 does not exist in Berlin; it runs once that night all the same.
    spring = next_run(datetime(2026, 3, 28, 12, 0, tzinfo=UTC), AT, BERLIN)
    assert (
        datetime(2026, 3, 29, 0, 0, tzinfo=UTC) < spring < datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    )
    # 25 October 2026: 02:30 happens twice; it runs at the first and not again that day.
    autumn = next_run(datetime(2026, 10, 24, 12, 0, tzinfo=UTC), AT, BERLIN)
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert next_run(autumn, AT, BERLIN).date() == datetime(2026, 10, 26).date()


async def test_the_scheduler_runs_once_a_day_at_the_local_time() -> None:
    now = [datetime(2026, 10, 23, 15, 0, tzinfo=UTC)]
    ran: list[datetime] = []
    naps: list[float] = []

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(ran) == 4:
            raise asyncio.CancelledError
        now[0] += timedelta(seconds=seconds)

    async def job() -> None:
        ran.append(now[0])
        now[0] += timedelta(minutes=7)  # a run takes a while
        if len(ran) == 2:
            raise RuntimeError("a bug in one run does not stop the schedule")

    scheduler = Scheduler(job, at=AT, zone=BERLIN, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(asyncio.CancelledError):
        await scheduler.run_forever()
    assert [t.astimezone(BERLIN).strftime("%d %H:%M %Z") for t in ran] == [
        "24 02:30 CEST",
        "25 02:30 CEST",
        "26 02:30 CET",
        "27 02:30 CET",
    ]
    assert max(naps) <= 300  # wakes up often enough to notice a changed clock


def _settings(sources: dict[str, str], key: str, directory: Path) -> BackupSettings:
    return BackupSettings(
        auth_database_url=sources["auth"],
        crm_database_url=sources["crm"],
        key=SecretStr(key),
        directory=directory,
    )


def test_a_run_is_recorded_and_a_failed_one_logged_as_an_error(
    sources: dict[str, str], key_text: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DirectoryStore(tmp_path / "snapshots")
    runs = RunLog(tmp_path / "snapshots" / "runs.jsonl", keep=3)
    clock = iter(datetime(2026, 1, 1, 1, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(99))

    good = run_daily(
        _settings(sources, key_text, store.root),
        store,
        runs,
        trigger="test",
        clock=lambda: next(clock),
    )
    assert good.ok, good.error
    assert good.verified is True
    assert store.list_ids() == [good.snapshot_id]

    broken = _settings(sources, key_text, store.root).model_copy(
        update={"crm_database_url": sources["crm"].rsplit("/", 1)[0] + "/tresor_missing"}
    )
    with caplog.at_level(logging.INFO, logger="tresor_backup.daily"):
        bad = run_daily(broken, store, runs, trigger="test", clock=lambda: next(clock))
    assert not bad.ok
    assert "tresor_missing" in bad.error
    [failed] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failed.getMessage() == "daily backup failed"

    assert [r.ok for r in runs.read()] == [True, False]
    for _ in range(3):
        runs.append(RunRecord(started_at="2026-01-02T01:30:00+00:00", trigger="test", ok=True))
    assert len(runs.read()) == 3  # the last N only
    assert key_text not in runs.path.read_text()


def _tresorctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("tresorctl")), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_tresorctl_run_daily_then_runs(
    sources: dict[str, str], key_text: str, tmp_path: Path
) -> None:
    env = {
        "TRESOR_BACKUP_AUTH_DATABASE_URL": sources["auth"],
        "TRESOR_BACKUP_CRM_DATABASE_URL": sources["crm"],
        "TRESOR_BACKUP_KEY": key_text,
        "TRESOR_BACKUP_DIRECTORY": str(tmp_path / "snapshots"),
    }
    done = _tresorctl(env, "backup", "run-daily")
    assert done.returncode == 0, done.stderr
    shown = _tresorctl(env, "backup", "runs")
    assert shown.returncode == 0, shown.stderr
    [run] = json.loads(shown.stdout[shown.stdout.index("[") :])
    assert run["ok"] is True
    assert run["trigger"] == "cli"
    assert run["snapshot_id"]


def test_tresorctl_argument_handling(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.tresorctl_parser()
    args = parser.parse_args(["backup", "export", "7b0d4c1e-0000-4000-8000-000000000001"])
    assert (args.area, args.command, args.out) == ("backup", "export", None)
    for wrong in (["snapshot"], ["backup"], ["backup", "export", "not-a-uuid"], ["crm", "list"]):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(wrong)
        assert exited.value.code == 2


async def test_tresorctl_export_writes_the_zip(backup: Backup, tmp_path: Path) -> None:  # noqa: F811
    world = backup.world
    alpha = await world.tenant("alpha")
    await world.seed(alpha, "Alpha", contacts=2)
    await world.document(alpha, record=("contact", alpha.contacts[0]), filename="a.pdf", size=1000)
    out = tmp_path / "alpha.zip"
    written = await cli.export_tenant(
        address=f"127.0.0.1:{backup.server.port}",
        token=backup.token,
        tenant_id=alpha.id,
        out=out,
        poll_seconds=0.05,
    )
    assert written == out
    with zipfile.ZipFile(out) as archive:
        assert "index.html" in archive.namelist()

    with pytest.raises(cli.ExportFailed, match="UNAUTHENTICATED"):
        await cli.export_tenant(
            address=f"127.0.0.1:{backup.server.port}",
            token="wrong",
            tenant_id=alpha.id,
            out=out,
            poll_seconds=0.05,
        )
