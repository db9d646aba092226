"""Wiring: build the backup gRPC server from settings and return it. No rules here."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from grpc import aio
from grpc_health.v1._async import HealthServicer
from pydantic import SecretStr

from tresor.backup.v1 import backup_pb2, backup_pb2_grpc
from tresor_backup.config import BackupSettings
from tresor_backup.daily import Clock, DailySettings, RunLog, Scheduler, SnapshotJobs, utc_now
from tresor_backup.export import ExportService
from tresor_backup.export_sources import AuthGateway, CrmDocuments, CrmRecords, ExportSourcesImpl
from tresor_backup.metrics import MetricsServer, RunMetrics, serve_metrics
from tresor_backup.servicer import BackupServicer
from tresor_backup.store import store_from_settings
from tresor_common.grpc_server import start_grpc_server

log = logging.getLogger(__name__)

SERVICE_NAME = backup_pb2.DESCRIPTOR.services_by_name["BackupService"].full_name


@dataclass
class BackupServer:
    server: aio.Server
    port: int
    health: HealthServicer
    exports: ExportService
    snapshots: SnapshotJobs
    channels: list[aio.Channel]
    tasks: "list[asyncio.Task[None]]"
    metrics: RunMetrics
    metrics_server: MetricsServer | None = None
    stopped: bool = field(default=False)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Health answers NOT_SERVING, calls in flight get `grace`, running exports fail."""
        if self.stopped:
            return
        self.stopped = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.exports.close()
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.stop)
        for channel in self.channels:
            await channel.close(None)


def _required(value: SecretStr | str | None, name: str) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value:
        raise ValueError(f"TRESOR_BACKUP_{name}: required to serve exports")
    return value


async def create_server(
    settings: BackupSettings,
    address: str | None = None,
    *,
    daily: DailySettings | None = None,
    clock: Clock = utc_now,
) -> BackupServer:
    """Build and start the server; `address` with port 0 picks a free port (tests).

    With `daily.schedule` on, the daily run (snapshot, verify, prune) runs in here. The
    run metrics are served on `daily.metrics_listen` (none when `daily` is not given).
    """
    daily = daily or DailySettings(schedule="off", metrics_listen="")
    tokens = settings.service_token_list()
    if not tokens:
        raise ValueError("TRESOR_BACKUP_SERVICE_TOKENS: at least one token is needed")
    documents_url = _required(settings.export_crm_database_url, "EXPORT_CRM_DATABASE_URL")
    crm_token = _required(settings.crm_service_token, "CRM_SERVICE_TOKEN")
    auth_token = _required(settings.auth_service_token, "AUTH_SERVICE_TOKEN")
    crm_channel = aio.insecure_channel(settings.crm_grpc_address)
    auth_channel = AuthGateway.channel(settings.auth_address, auth_token)
    auth = AuthGateway(auth_channel, settings.auth_timeout_seconds)
    exports = ExportService(
        directory=settings.export_directory,
        sources=ExportSourcesImpl(
            CrmRecords(crm_channel, crm_token), CrmDocuments(documents_url), auth
        ),
        audit=auth,
        keep=timedelta(seconds=settings.export_keep_seconds),
        max_running=settings.export_max_running,
    )
    interrupted = exports.recover()
    if interrupted:
        log.warning("exports interrupted by a restart", extra={"count": interrupted})

    runs = RunLog(daily.runs_path(settings), daily.keep_runs)
    snapshots = SnapshotJobs(settings, store_from_settings(settings), runs, clock)
    metrics = RunMetrics()
    metrics.load(runs)
    metrics_server = serve_metrics(metrics, daily.metrics_listen) if daily.metrics_listen else None
    if metrics_server is not None:
        log.info("backup metrics listening", extra={"port": metrics_server.port})
    started = await start_grpc_server(
        service_names=[SERVICE_NAME],
        add_servicers=lambda server: backup_pb2_grpc.add_BackupServiceServicer_to_server(
            BackupServicer(exports, snapshots), server
        ),
        tokens=tokens,
        address=address or settings.listen,
    )
    tasks = [
        asyncio.create_task(
            exports.sweep_forever(settings.export_sweep_seconds), name="export-sweeper"
        )
    ]
    if daily.schedule == "on":

        async def daily_run() -> None:
            try:
                await snapshots.run_daily()
            finally:
                metrics.load(runs)

        scheduler = Scheduler(daily_run, at=daily.daily_at, zone=daily.zone(), clock=clock)
        tasks.append(asyncio.create_task(scheduler.run_forever(), name="daily-backup"))
        log.info(
            "daily backup scheduled",
            extra={"at": daily.daily_at.isoformat(), "timezone": daily.timezone},
        )
    log.info("backup service listening", extra={"port": started.port})
    return BackupServer(
        started.server,
        started.port,
        started.health,
        exports,
        snapshots,
        [crm_channel, auth_channel],
        tasks,
        metrics,
        metrics_server,
    )
