"""A tenant's export (ZIP) through the running backup service: wall time and peak memory.

`python -m benchmarks.backup_export [--record docs/benchmarks.md]` (`make bench`):

1. finds PostgreSQL and Redis like the tests; creates a scratch `crm` database (CRM
   migrations) and a scratch `auth` database (auth migrations);
2. starts auth in this process and creates a tenant with an admin; COPYs the tenant's
   100,000 contacts and 2,000 companies (crm_search's loader) and 500 documents of 1 MiB
   (backup_snapshot's loader: half random bytes, half text-like) into the crm database;
3. starts `python -m tresor_crm` (its gRPC API) and `python -m tresor_backup serve`, each
   as its own process;
4. asks the backup service for the export as `tresorctl backup export` does (StartExport,
   ExportStatus until done, OpenExport to a file), timed from the request to the last byte;
5. reads the backup process's peak resident memory (VmHWM) from /proc, before and after;
6. with --record, rewrites its own section of a Markdown file.

Processes are stopped, databases dropped and files removed at the end, also on errors.
"""

import argparse
import asyncio
import base64
import contextlib
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from grpc import aio

from benchmarks.backup_snapshot import MIB, load_documents, scratch_databases
from benchmarks.crm_search import load_data, postgres_admin_url, postgres_version, scratch_database
from benchmarks.report import child_process, cpu_model, record, stop_on_sigterm
from tests import backing
from tests.auth.harness import SERVICE_TOKEN, channel, settings_for
from tests.backup.export_harness import export_role_url
from tresor.auth.v1 import auth_pb2, auth_pb2_grpc
from tresor_auth.server import create_server, migrate
from tresor_backup.cli import export_tenant
from tresor_common.identity import generate_private_key_pem, load_private_key, public_key_pem

SECTION = "## Backup: export"
TARGET_PEAK_MIB = 200.0
START_SECONDS = 60.0


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


async def wait_for_grpc(address: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    async with aio.insecure_channel(address) as chan:
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"{child.args!r} exited with status {child.returncode}")
            with contextlib.suppress(asyncio.TimeoutError, grpc.FutureTimeoutError):
                await asyncio.wait_for(chan.channel_ready(), 1.0)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing answers on {address}")


def without(prefix: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(prefix)}


@dataclass(frozen=True)
class Figures:
    contacts: int
    documents: int
    document_bytes: int
    load_seconds: float
    export_seconds: float
    zip_bytes: int
    idle_peak_bytes: int
    peak_bytes: int


async def run_export(args: argparse.Namespace, work: Path) -> tuple[Figures, str]:
    with contextlib.ExitStack() as stack:
        admin_url = stack.enter_context(postgres_admin_url())
        redis_url = stack.enter_context(backing.redis_url())
        pg = postgres_version(admin_url)
        auth_url = stack.enter_context(scratch_databases(admin_url, "auth"))["auth"]
        auth_settings = settings_for(
            database_url=auth_url, migration_url=auth_url, redis_url=redis_url
        )
        migrate(auth_settings)
        auth_server = await create_server(auth_settings, "127.0.0.1:0")
        auth_address = f"127.0.0.1:{auth_server.port}"
        auth_channel = channel(auth_address)
        try:
            stub = auth_pb2_grpc.AuthServiceStub(auth_channel)
            slug = f"bench-{uuid.uuid4().hex[:8]}"
            tenant = await stub.CreateTenant(
                auth_pb2.CreateTenantRequest(slug=slug, display_name="Bench GmbH")
            )
            await stub.CreateUser(
                auth_pb2.CreateUserRequest(
                    tenant_id=tenant.id,
                    username="admin",
                    display_name="Admin",
                    password=secrets.token_urlsafe(16),
                    roles=[auth_pb2.ROLE_ADMIN],
                )
            )
            tenant_id = uuid.UUID(tenant.id)
            owner, runtime = stack.enter_context(scratch_database(admin_url))
            print(f"loading {args.contacts:,} contacts ...", flush=True)
            load_seconds = load_data(owner, [(tenant_id, args.contacts, args.contacts // 50)])
            document_size = args.document_mib * MIB
            load_seconds += load_documents(
                owner, tenant_id, count=args.documents, size=document_size
            )
            print(f"  loaded in {load_seconds:.0f} s", flush=True)

            crm_port, backup_port = backing.free_port(), backing.free_port()
            crm_token = secrets.token_urlsafe(24)
            crm_env = without("TRESOR_CRM_")
            crm_env.update(
                TRESOR_CRM_ENVIRONMENT="development",
                TRESOR_CRM_DATABASE_URL=runtime,
                TRESOR_CRM_MIGRATE_ON_START="false",
                TRESOR_CRM_LISTEN=f"127.0.0.1:{backing.free_port()}",
                TRESOR_CRM_LOG_LEVEL="WARNING",
                TRESOR_CRM_IDENTITY_PUBLIC_KEYS=public_key_pem(
                    load_private_key(generate_private_key_pem())
                ),
                TRESOR_CRM_GRPC_ENABLED="true",
                TRESOR_CRM_GRPC_LISTEN=f"127.0.0.1:{crm_port}",
                TRESOR_CRM_GRPC_SERVICE_TOKENS=crm_token,
            )
            crm = stack.enter_context(child_process([sys.executable, "-m", "tresor_crm"], crm_env))
            backup_token = secrets.token_urlsafe(24)
            backup_env = without("TRESOR_BACKUP_")
            backup_env.update(
                TRESOR_BACKUP_ENVIRONMENT="development",
                TRESOR_BACKUP_LOG_LEVEL="WARNING",
                TRESOR_BACKUP_AUTH_DATABASE_URL=auth_url,
                TRESOR_BACKUP_CRM_DATABASE_URL=owner,
                TRESOR_BACKUP_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
                TRESOR_BACKUP_DIRECTORY=str(work / "snapshots"),
                TRESOR_BACKUP_LISTEN=f"127.0.0.1:{backup_port}",
                TRESOR_BACKUP_SERVICE_TOKENS=backup_token,
                TRESOR_BACKUP_EXPORT_DIRECTORY=str(work / "exports"),
                TRESOR_BACKUP_EXPORT_CRM_DATABASE_URL=export_role_url(owner, admin_url),
                TRESOR_BACKUP_CRM_GRPC_ADDRESS=f"127.0.0.1:{crm_port}",
                TRESOR_BACKUP_CRM_SERVICE_TOKEN=crm_token,
                TRESOR_BACKUP_AUTH_ADDRESS=auth_address,
                TRESOR_BACKUP_AUTH_SERVICE_TOKEN=SERVICE_TOKEN,
            )
            backup = stack.enter_context(
                child_process([sys.executable, "-m", "tresor_backup", "serve"], backup_env)
            )
            await wait_for_grpc(f"127.0.0.1:{crm_port}", crm)
            await wait_for_grpc(f"127.0.0.1:{backup_port}", backup)
            idle_peak = peak_rss_bytes(backup.pid)
            out = work / "export.zip"
            print("exporting ...", flush=True)
            started = time.monotonic()
            await export_tenant(
                address=f"127.0.0.1:{backup_port}",
                token=backup_token,
                tenant_id=str(tenant_id),
                out=out,
                poll_seconds=0.5,
            )
            export_seconds = time.monotonic() - started
            peak = peak_rss_bytes(backup.pid)
        finally:
            await auth_channel.close(None)
            await auth_server.stop(grace=0)
    figures = Figures(
        contacts=args.contacts,
        documents=args.documents,
        document_bytes=args.documents * document_size,
        load_seconds=load_seconds,
        export_seconds=export_seconds,
        zip_bytes=out.stat().st_size,
        idle_peak_bytes=idle_peak,
        peak_bytes=peak,
    )
    return figures, pg


def render_section(f: Figures, *, pg: str) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{len(os.sched_getaffinity(0))} CPUs ({cpu_model()}), {platform.system()} "
        f"{platform.release()}, CPython {platform.python_version()}, {pg}"
    )
    peak_mib = f.peak_bytes / MIB
    met = "met" if peak_mib < TARGET_PEAK_MIB else "NOT met"
    return "\n".join(
        [
            SECTION,
            "",
            "`make bench` (`python -m benchmarks.backup_export`) loads one tenant with COPY: "
            f"{f.contacts:,} contacts, {f.contacts // 50:,} companies and {f.documents:,} "
            f"documents ({f.document_bytes / MIB:,.0f} MiB in 256 KiB chunks, half random, half "
            f"text-like), in {f.load_seconds:.0f} s. Auth runs in the benchmark's process; the "
            "CRM (`python -m tresor_crm`, its gRPC record stream) and the backup service "
            "(`python -m tresor_backup serve`) each run as their own process. The export is "
            "asked for as `tresorctl backup export` does (StartExport, ExportStatus until "
            "done, OpenExport to a file) and timed from the request to the last byte of the "
            "ZIP. Peak memory is the backup process's VmHWM (peak resident set) from /proc, "
            "read after the export; the same before the export is its start-up peak.",
            "",
            "| Figure | Value |",
            "|---|---:|",
            f"| export time (request to downloaded ZIP) | {f.export_seconds:.1f} s |",
            f"| ZIP size | {f.zip_bytes / MIB:,.0f} MiB |",
            f"| backup process peak RSS, before the export | {f.idle_peak_bytes / MIB:.0f} MiB |",
            f"| backup process peak RSS, after the export | {peak_mib:.0f} MiB |",
            "",
            f"Machine: {machine}. Date: {date}.",
            "",
            f"Target: export peak memory under {TARGET_PEAK_MIB:g} MB: {met} ({peak_mib:.0f} MiB).",
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks.backup_export", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--record", type=Path, metavar="FILE", help="rewrite our section of FILE")
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts of the tenant")
    parser.add_argument("--documents", type=int, default=500, help="documents of the tenant")
    parser.add_argument("--document-mib", type=int, default=1, help="MiB per document")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="tresor-bench-export-"))
    try:
        figures, pg = asyncio.run(run_export(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = render_section(figures, pg=pg)
    print(section)
    if args.record:
        record(args.record, SECTION, section)
        print(f"recorded in {args.record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
