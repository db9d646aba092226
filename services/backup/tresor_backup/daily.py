"""Snapshots inside the running service, and the daily run (snapshot, verify, prune).

- `SnapshotJobs`: what the gRPC API asks for. A snapshot runs in a worker thread; its
  id is known as soon as it is staged, so the caller can poll ListSnapshots. Runs never
  overlap (a run's clean-up would take another run's staging for leftovers).
- `run_daily`: the nightly job, the same for the Kubernetes CronJob
  (`python -m tresor_backup run-daily`) and for the schedule inside `serve` (`make run`).
  Every run and its outcome is appended to `runs.jsonl` (the last `keep_runs` are kept,
  the counts of all runs by outcome beside it in `runs.totals.json`); a failed run is
  logged at error level and shows in the metrics (`metrics.py`).
- `Scheduler`: waits for the configured local time (zoneinfo) and starts the run, with
  an injectable clock and sleep so tests need not wait a day.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from tresor_backup import crypto, pg_store
from tresor_backup.config import BackupSettings
from tresor_backup.restore import Progress, RestoreError, no_progress
from tresor_backup.retention import prune
from tresor_backup.snapshot import ManifestError, take_snapshot
from tresor_backup.store import (
    MANIFEST,
    VERIFIED,
    SnapshotStore,
    StoreError,
    write_atomically,
)
from tresor_backup.verify import VerifyResult, verify_snapshot
from tresor_common.settings import TresorSettings

log = logging.getLogger(__name__)

# What a run may fail with; anything else is a bug and keeps its traceback.
FAILURES: tuple[type[Exception], ...] = (
    RestoreError,
    StoreError,
    ManifestError,
    crypto.CryptoError,
    pg_store.PgToolError,
    psycopg.Error,
    OSError,
)
RECHECK_SECONDS = 300.0
FAILED_JOBS_KEPT = 10

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class DailySettings(TresorSettings):
    """The daily run's settings, also `TRESOR_BACKUP_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="TRESOR_BACKUP_", extra="ignore")

    # on: `serve` runs the daily job itself (make run). off: an outside scheduler calls
    # `python -m tresor_backup run-daily` (the Kubernetes CronJob in production).
    schedule: Literal["on", "off"] = "off"
    daily_at: time = time(2, 30)
    timezone: str = "Europe/Berlin"
    # Where each run's outcome is appended; empty: `runs.jsonl` in the snapshot directory.
    runs_file: Path | None = None
    keep_runs: int = 100
    # Prometheus metrics of the daily runs: `serve` listens here (empty: no endpoint);
    # `run-daily` writes them to METRICS_TEXTFILE (node-exporter's textfile collector).
    metrics_listen: str = "127.0.0.1:9464"
    metrics_textfile: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("keep_runs")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def runs_path(self, backup: BackupSettings) -> Path:
        return self.runs_file or backup.directory / "runs.jsonl"


# -- the record of runs -------------------------------------------------------------------


@dataclass
class RunRecord:
    started_at: str
    trigger: str
    ok: bool = False
    finished_at: str = ""
    snapshot_id: str = ""
    verified: bool | None = None
    pruned: list[str] = field(default_factory=list)
    error: str = ""


class RunLog:
    """`runs.jsonl`: one JSON object per run, oldest first, the last `keep` only."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()

    @property
    def totals_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.totals.json")

    def totals(self) -> dict[str, int]:
        """Runs by outcome since the log began (not only the kept ones)."""
        try:
            raw = json.loads(self.totals_path.read_text(encoding="utf-8"))
            return {"ok": int(raw["ok"]), "failed": int(raw["failed"])}
        except (OSError, ValueError, KeyError, TypeError):
            records = self.read()
            ok = sum(1 for r in records if r.ok)
            return {"ok": ok, "failed": len(records) - ok}

    def read(self) -> list[RunRecord]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(RunRecord(**json.loads(line)))
            except (ValueError, TypeError):
                log.warning("unreadable line in the run log", extra={"path": str(self.path)})
        return records

    def append(self, record: RunRecord) -> None:
        with self._lock:
            totals = self.totals()
            totals["ok" if record.ok else "failed"] += 1
            records = [*self.read(), record][-self.keep :]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in records)
            write_atomically(self.path, text.encode())
            write_atomically(self.totals_path, json.dumps(totals).encode())


# -- the daily run ------------------------------------------------------------------------


def run_daily(
    settings: BackupSettings,
    store: SnapshotStore,
    runs: RunLog,
    *,
    trigger: str,
    clock: Clock = utc_now,
    progress: Progress = no_progress,
    on_staged: Callable[[str], None] | None = None,
) -> RunRecord:
    """Snapshot, verify it, prune; the outcome is recorded and logged either way."""
    record = RunRecord(started_at=clock().isoformat(), trigger=trigger)
    try:
        result = take_snapshot(
            databases=settings.database_urls(),
            store=_Staged(store, on_staged) if on_staged else store,
            operator_key=settings.operator_key(),
            pg_bin_dir=settings.pg_bin_dir,
            progress=progress,
        )
        record.snapshot_id = result.snapshot_id
        verified = verify_snapshot(
            store=store,
            snapshot_id=result.snapshot_id,
            operator_key=settings.operator_key(),
            servers=settings.database_urls(),
            pg_bin_dir=settings.pg_bin_dir,
            progress=progress,
        )
        record.verified = verified.ok
        if not verified.ok:
            record.error = "verify: " + "; ".join(verified.problems)
        # Pruning never deletes the newest verified snapshot, so it runs either way.
        record.pruned = prune(
            store,
            daily=settings.keep_daily,
            weekly=settings.keep_weekly,
            monthly=settings.keep_monthly,
        ).deleted
        record.ok = verified.ok
    except FAILURES as exc:
        record.error = str(exc)
    finally:
        record.finished_at = clock().isoformat()
        runs.append(record)
    extra = {k: v for k, v in asdict(record).items() if k != "started_at"}
    if record.ok:
        log.info("daily backup done", extra=extra)
    else:
        log.error("daily backup failed", extra=extra)
    return record


def next_run(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The first `at` (local time in `zone`) strictly after `now`, in UTC."""
    local = now.astimezone(zone)
    day = local.date()
    while True:
        due = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
        if due > now:
            return due
        day += timedelta(days=1)


class Scheduler:
    """Runs `job` once a day at `at` local time; the clock is re-read after every nap."""

    def __init__(
        self,
        job: Callable[[], Awaitable[object]],
        *,
        at: time,
        zone: ZoneInfo,
        clock: Clock = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._job = job
        self._at = at
        self._zone = zone
        self._clock = clock
        self._sleep = sleep

    async def run_forever(self) -> None:
        while True:
            due = next_run(self._clock(), self._at, self._zone)
            log.info("next daily backup", extra={"at": due.isoformat()})
            while (wait := (due - self._clock()).total_seconds()) > 0:
                await self._sleep(min(wait, RECHECK_SECONDS))
            try:
                await self._job()
            except Exception:
                log.exception("daily backup crashed")


# -- snapshots for the gRPC API -------------------------------------------------------------


class AlreadyRunning(Exception):
    """A snapshot is being taken; only one at a time."""


class UnknownSnapshot(Exception):
    """No complete snapshot has this id."""


@dataclass
class SnapshotInfo:
    id: str
    state: Literal["running", "complete", "failed"]
    started_at: datetime | None = None
    finished_at: datetime | None = None
    size_bytes: int = 0
    verified_at: datetime | None = None
    error: str = ""


class _Staged:
    """A store that reports the snapshot id as soon as the snapshot is staged."""

    def __init__(self, store: SnapshotStore, on_staged: Callable[[str], None]) -> None:
        self._store = store
        self._on_staged = on_staged

    def staging(self, snapshot_id: str) -> Path:
        path = self._store.staging(snapshot_id)
        self._on_staged(snapshot_id)
        return path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def stored_snapshots(store: SnapshotStore) -> list[SnapshotInfo]:
    """The complete snapshots in the store, newest first."""
    rows = []
    for snapshot_id in reversed(store.list_ids()):
        manifest = json.loads(store.read(snapshot_id, MANIFEST))
        info = SnapshotInfo(
            id=snapshot_id,
            state="complete",
            started_at=datetime.fromisoformat(manifest["created_at"]),
            size_bytes=sum(int(part["size"]) for part in manifest["parts"]),
        )
        try:
            verified = json.loads(store.read(snapshot_id, VERIFIED))
        except (StoreError, ValueError):
            verified = None
        if verified is not None and verified.get("ok") is True:
            info.verified_at = datetime.fromisoformat(verified["verified_at"])
        rows.append(info)
    return rows


class SnapshotJobs:
    """Snapshots and verifications asked for over gRPC, and the scheduled daily run."""

    def __init__(
        self, settings: BackupSettings, store: SnapshotStore, runs: RunLog, clock: Clock = utc_now
    ) -> None:
        self._settings = settings
        self._store = store
        self._runs = runs
        self._clock = clock
        self._busy = asyncio.Lock()
        self._running: SnapshotInfo | None = None
        self._finished: dict[str, datetime] = {}
        self._failed: deque[SnapshotInfo] = deque(maxlen=FAILED_JOBS_KEPT)
        self._tasks: set[asyncio.Task[RunRecord]] = set()

    async def start(self) -> SnapshotInfo:
        """Start a snapshot in the background; returns it as soon as it has an id."""
        if self._busy.locked():
            raise AlreadyRunning(
                "a snapshot is already being taken"
                + (f": {self._running.id}" if self._running else "")
            )
        staged: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._snapshot("api", staged), name="snapshot")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        waiting: set[asyncio.Future[Any]] = {staged, task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if staged.done():
            assert self._running is not None
            return self._running
        record = task.result()
        failed = SnapshotInfo(
            id="",
            state="failed",
            started_at=datetime.fromisoformat(record.started_at),
            finished_at=datetime.fromisoformat(record.finished_at),
            error=record.error,
        )
        self._failed.appendleft(failed)
        return failed

    async def run_daily(self) -> RunRecord:
        """The scheduled run; waits for a snapshot asked for over gRPC to finish first."""
        return await self._snapshot("schedule", None)

    async def _snapshot(self, trigger: str, staged: asyncio.Future[str] | None) -> RunRecord:
        loop = asyncio.get_running_loop()

        def on_staged(snapshot_id: str) -> None:
            self._running = SnapshotInfo(id=snapshot_id, state="running", started_at=self._clock())
            if staged is not None:
                loop.call_soon_threadsafe(_resolve, staged, snapshot_id)

        async with self._busy:
            try:
                record = await asyncio.to_thread(
                    run_daily if trigger == "schedule" else self._snapshot_only,
                    self._settings,
                    self._store,
                    self._runs,
                    trigger=trigger,
                    clock=self._clock,
                    on_staged=on_staged,
                )
            finally:
                running, self._running = self._running, None
        if running is not None:
            if record.snapshot_id:
                self._finished[record.snapshot_id] = datetime.fromisoformat(record.finished_at)
            elif record.error:
                running.state = "failed"
                running.error = record.error
                running.finished_at = datetime.fromisoformat(record.finished_at)
                self._failed.appendleft(running)
        return record

    @staticmethod
    def _snapshot_only(
        settings: BackupSettings,
        store: SnapshotStore,
        runs: RunLog,
        *,
        trigger: str,
        clock: Clock,
        on_staged: Callable[[str], None],
    ) -> RunRecord:
        """A snapshot asked for over gRPC: no verify, no prune, not a daily run."""
        record = RunRecord(started_at=clock().isoformat(), trigger=trigger)
        try:
            result = take_snapshot(
                databases=settings.database_urls(),
                store=_Staged(store, on_staged),
                operator_key=settings.operator_key(),
                pg_bin_dir=settings.pg_bin_dir,
            )
            record.snapshot_id = result.snapshot_id
            record.ok = True
            log.info("snapshot taken", extra={"snapshot_id": result.snapshot_id})
        except FAILURES as exc:
            record.error = str(exc)
            log.error("snapshot failed", extra={"error": record.error})
        finally:
            record.finished_at = clock().isoformat()
        return record

    def list_all(self) -> list[SnapshotInfo]:
        """The running snapshot, then complete ones newest first, then recent failures."""
        rows = [self._running] if self._running else []
        for info in stored_snapshots(self._store):
            info.finished_at = self._finished.get(info.id)
            rows.append(info)
        return [*rows, *self._failed]

    async def verify(self, snapshot_id: str) -> VerifyResult:
        if snapshot_id not in self._store.list_ids():
            raise UnknownSnapshot(f"no complete snapshot {snapshot_id!r}")
        return await asyncio.to_thread(
            verify_snapshot,
            store=self._store,
            snapshot_id=snapshot_id,
            operator_key=self._settings.operator_key(),
            servers=self._settings.database_urls(),
            pg_bin_dir=self._settings.pg_bin_dir,
        )

    def runs(self) -> list[RunRecord]:
        return self._runs.read()


def _resolve(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)
