"""The daily run's metrics: over a real HTTP socket, and as a node-exporter textfile."""

import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tresor_backup import cli
from tresor_backup.config import BackupSettings
from tresor_backup.daily import DailySettings, RunLog, RunRecord, run_daily
from tresor_backup.metrics import RunMetrics, serve_metrics
from tresor_backup.store import DirectoryStore


def _samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("outcome", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _broken(sources: dict[str, str], key: str, directory: Path) -> BackupSettings:
    return BackupSettings(
        auth_database_url=sources["auth"],
        crm_database_url=sources["crm"].rsplit("/", 1)[0] + "/tresor_missing",
        key=SecretStr(key),
        directory=directory,
    )


def test_a_failed_run_shows_on_the_metrics_endpoint(
    sources: dict[str, str], key_text: str, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path / "snapshots")
    runs = RunLog(tmp_path / "snapshots" / "runs.jsonl", keep=2)
    earlier = datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    for day in range(3):  # more than the log keeps: the totals still count them
        at = (earlier + timedelta(days=day)).isoformat()
        runs.append(RunRecord(started_at=at, finished_at=at, trigger="test", ok=True))
    metrics = RunMetrics()
    metrics.load(runs)  # at start-up
    server = serve_metrics(metrics, "127.0.0.1:0")
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        before = _samples(urllib.request.urlopen(url, timeout=10).read().decode())
        assert before[("tresor_backup_last_run_success", "")] == 1
        assert before[("tresor_backup_runs_total", "ok")] == 3
        assert before[("tresor_backup_runs_total", "failed")] == 0

        bad = run_daily(_broken(sources, key_text, store.root), store, runs, trigger="test")
        assert not bad.ok
        metrics.load(runs)  # after the run

        after = _samples(urllib.request.urlopen(url, timeout=10).read().decode())
    finally:
        server.stop()
    assert after[("tresor_backup_last_run_success", "")] == 0
    assert after[("tresor_backup_runs_total", "failed")] == 1
    assert after[("tresor_backup_runs_total", "ok")] == 3
    last_ok = (earlier + timedelta(days=2)).timestamp()
    assert after[("tresor_backup_last_success_timestamp_seconds", "")] == last_ok
    assert after[("tresor_backup_last_run_timestamp_seconds", "")] > last_ok


def test_run_daily_writes_the_textfile(
    sources: dict[str, str], key_text: str, tmp_path: Path
) -> None:
    textfile = tmp_path / "textfile" / "tresor_backup.prom"
    daily = DailySettings(metrics_textfile=textfile, metrics_listen="")
    broken = _broken(sources, key_text, tmp_path / "snapshots")

    assert cli.run_daily(broken, daily) is False

    samples = _samples(textfile.read_text())
    assert samples[("tresor_backup_last_run_success", "")] == 0
    assert samples[("tresor_backup_runs_total", "failed")] == 1
    assert samples[("tresor_backup_runs_total", "ok")] == 0
    assert not [p for p in textfile.parent.iterdir() if p != textfile]  # no temporary left
