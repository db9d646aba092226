"""The daily run's Prometheus metrics: over HTTP from `serve`, as a textfile from `run-daily`.

- `tresor_backup_last_run_success`: 1 if the last daily run succeeded, else 0.
- `tresor_backup_last_run_timestamp_seconds`: when the last daily run finished.
- `tresor_backup_last_success_timestamp_seconds`: when the last successful run finished.
- `tresor_backup_runs_total{outcome="ok|failed"}`: runs since the run log was started.

The figures come from the run log (and its totals), so a restarted service or a fresh
CronJob process shows the same values as the process that did the run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.exposition import write_to_textfile

from tresor_backup.daily import RunLog, RunRecord


def _seconds(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


class RunMetrics:
    """The four figures in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.last_run_success = Gauge(
            "tresor_backup_last_run_success",
            "1 if the last daily backup run succeeded, 0 if it failed",
            registry=self.registry,
        )
        self.last_run_timestamp = Gauge(
            "tresor_backup_last_run_timestamp_seconds",
            "When the last daily backup run finished (Unix time)",
            registry=self.registry,
        )
        self.last_success_timestamp = Gauge(
            "tresor_backup_last_success_timestamp_seconds",
            "When the last successful daily backup run finished (Unix time)",
            registry=self.registry,
        )
        self.runs = Counter(
            "tresor_backup_runs",
            "Daily backup runs by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self._totals = {"ok": 0, "failed": 0}
        for outcome in self._totals:
            self.runs.labels(outcome=outcome)

    def load(self, runs: RunLog) -> None:
        """Set every figure from the run log: at start-up, and after each run."""
        records = runs.read()
        for outcome, total in runs.totals().items():
            # Counters only go up: add what the log counted since the last look.
            missing = total - self._totals.get(outcome, 0)
            if missing > 0:
                self.runs.labels(outcome=outcome).inc(missing)
                self._totals[outcome] = total
        if records:
            self._last(records[-1], [r for r in records if r.ok])

    def _last(self, last: RunRecord, successes: list[RunRecord]) -> None:
        self.last_run_success.set(1 if last.ok else 0)
        finished = _seconds(last.finished_at or last.started_at)
        if finished is not None:
            self.last_run_timestamp.set(finished)
        if successes:
            success = _seconds(successes[-1].finished_at)
            if success is not None:
                self.last_success_timestamp.set(success)

    def write_textfile(self, path: Path) -> None:
        """For node-exporter's textfile collector: a temporary file renamed into place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an explicit ':port'


def serve_metrics(metrics: RunMetrics, listen: str) -> MetricsServer:
    """prometheus_client's HTTP server in a daemon thread; port 0 picks a free port."""
    host, port = parse_listen(listen)
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsServer(server, thread)
