"""The command line: run-daily, list, restore, as a platform engineer runs them."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg

from tresor_backup import pg_store


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tresor_backup", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_run_daily_then_list_then_restore(
    sources: dict[str, str],
    key_text: str,
    tmp_path: Path,
    empty_database: Callable[[], str],
) -> None:
    env = {
        "TRESOR_BACKUP_AUTH_DATABASE_URL": sources["auth"],
        "TRESOR_BACKUP_CRM_DATABASE_URL": sources["crm"],
        "TRESOR_BACKUP_KEY": key_text,
        "TRESOR_BACKUP_DIRECTORY": str(tmp_path / "snapshots"),
    }
    daily = _cli(env, "run-daily")
    assert daily.returncode == 0, daily.stderr
    assert "crm: restored" in daily.stderr
    outcome = [json.loads(line) for line in daily.stdout.splitlines()][-1]
    assert outcome["message"] == "daily backup done"
    assert key_text not in daily.stdout + daily.stderr

    listed = _cli(env, "list")
    assert listed.returncode == 0, listed.stderr
    [snapshot] = json.loads(listed.stdout[listed.stdout.index("[") :])
    assert snapshot["verified"] is True

    refused = _cli(env, "restore", snapshot["id"])
    assert refused.returncode == 1
    assert "not empty" in refused.stderr

    auth, crm = empty_database(), empty_database()
    restored = _cli(
        env, "restore", snapshot["id"], "--target", f"auth={auth}", "--target", f"crm={crm}"
    )
    assert restored.returncode == 0, restored.stderr
    with psycopg.connect(crm) as target, psycopg.connect(sources["crm"]) as source:
        assert pg_store.table_checksums(target) == pg_store.table_checksums(source)


def test_a_bad_setting_stops_with_its_name(tmp_path: Path) -> None:
    done = _cli({"TRESOR_BACKUP_KEY": "short"}, "list")
    assert done.returncode == 2
    assert "TRESOR_BACKUP_KEY" in done.stderr
