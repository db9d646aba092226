"""A snapshot process killed at any point leaves no snapshot that looks whole."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tresor_backup.snapshot import CRASH_ENV
from tresor_backup.store import DirectoryStore


def _run(sources: dict[str, str], key_text: str, directory: Path, crash_at: str | None) -> int:
    env = {
        **os.environ,
        "TRESOR_BACKUP_AUTH_DATABASE_URL": sources["auth"],
        "TRESOR_BACKUP_CRM_DATABASE_URL": sources["crm"],
        "TRESOR_BACKUP_KEY": key_text,
        "TRESOR_BACKUP_DIRECTORY": str(directory),
    }
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    done = subprocess.run(
        [sys.executable, "-m", "tresor_backup", "snapshot"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode


@pytest.mark.parametrize("point", ["after-first-part", "during-manifest", "before-publish"])
def test_a_killed_snapshot_is_never_listed_and_the_next_run_cleans_up(
    sources: dict[str, str], key_text: str, tmp_path: Path, point: str
) -> None:
    directory = tmp_path / "snapshots"
    store = DirectoryStore(directory)

    assert _run(sources, key_text, directory, point) == -signal.SIGKILL
    assert store.list_ids() == []
    assert [p.name.startswith(".tmp-") for p in directory.iterdir()] == [True]

    assert _run(sources, key_text, directory, None) == 0
    assert len(store.list_ids()) == 1
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]
