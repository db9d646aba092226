"""Wiring of the CRM process: migrations, the HTTP app and the gRPC server, from settings."""

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from tresor_common.identity import generate_private_key_pem, load_private_key, public_key_pem
from tresor_common.migrations import apply_migrations
from tresor_crm.app import create_app
from tresor_crm.config import CrmSettings
from tresor_crm.db import Database
from tresor_crm.grpc_server import create_grpc_server

MIGRATIONS = Path(__file__).parent / "migrations"
# Calls and requests in flight get this long after SIGTERM.
STOP_GRACE_SECONDS = 5.0

log = logging.getLogger("tresor_crm")


def migrate(settings: CrmSettings) -> list[str]:
    return apply_migrations(settings.migration_url, MIGRATIONS)


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process stops both servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: FastAPI, settings: CrmSettings) -> uvicorn.Server:
    host, _, port = settings.listen.rpartition(":")
    config = uvicorn.Config(
        app,
        host=host.strip("[]") or "127.0.0.1",
        port=int(port),
        proxy_headers=False,
        server_header=False,
        date_header=False,
        # Paths carry link tokens.
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(STOP_GRACE_SECONDS),
    )
    return _HttpServer(config)


async def serve(settings: CrmSettings) -> None:
    """HTTP (and gRPC when enabled) on one database pool, until SIGTERM or SIGINT."""
    database = await Database.open(
        settings.database_url,
        size=settings.database_pool_size,
        timeout_seconds=settings.database_timeout_seconds,
    )
    try:
        http = http_server(create_app(settings, database), settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        http_task = asyncio.create_task(http.serve())
        # uvicorn only offers a flag for "listening".
        while not http.started and not http_task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if http_task.done():
            await http_task
            raise RuntimeError(f"the HTTP server did not start on {settings.listen}")
        grpc = await create_grpc_server(settings, database) if settings.grpc_enabled else None
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        log.info("shutting down")
        http.should_exit = True
        if grpc is not None:
            await grpc.stop(grace=STOP_GRACE_SECONDS)
        await http_task
    finally:
        await database.close()


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, independent of this machine's settings."""
    settings = CrmSettings.model_construct(
        environment="development",
        database_url="postgresql://openapi@localhost/crm",
        identity_public_keys=[public_key_pem(load_private_key(generate_private_key_pem()))],
    )
    document: dict[str, Any] = create_app(settings).openapi()
    return document


def openapi_json() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
