"""Backup snapshot and restore against plain pg_dump/pg_restore, on a large CRM database.

`python -m benchmarks.backup_snapshot [--record docs/benchmarks.md]` (`make bench`):

1. finds PostgreSQL like benchmarks.crm_search (TRESOR_BENCH_DATABASE_URL, else the tests'
   server);
2. creates a scratch `crm` database (CRM migrations) and bulk-loads it with COPY through
   crm_search's loader: 1,000,000 contacts, 20,000 companies; then 1 GiB of documents
   (1,024 documents of 1 MiB in 256 KiB chunks, half random bytes, half text-like), and a
   scratch `auth` database (auth migrations, empty);
3. times plain `pg_dump -Fc` of the crm database to a file and `pg_restore` of that file
   into an empty database: the limit;
4. times `python -m tresor_backup snapshot` (both databases) and
   `python -m tresor_backup restore` into empty databases, each as its own process;
5. prints times, ratios and sizes; with --record, rewrites its own section of a file.

Scratch databases and files are removed at the end, also when something fails.
"""

import argparse
import base64
import contextlib
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.crm_search import load_data, postgres_admin_url, postgres_version
from benchmarks.report import cpu_model, record, stop_on_sigterm
from tests import backing
from tresor_auth.server import MIGRATIONS as AUTH_MIGRATIONS
from tresor_backup import pg_store
from tresor_common.migrations import apply_migrations
from tresor_crm.server import MIGRATIONS as CRM_MIGRATIONS

SECTION = "## Backup: snapshot and restore"
TARGET_RATIO = 1.5
CHUNK = 256 * 1024
MIB = 1024 * 1024

WORDS_TEXT = (
    "Angebot Rechnung Vertrag Lieferung Kunde Termin Projekt Wartung Anlage Prüfung Bericht "
    "Maschine Auftrag Bestellung Zahlung Frist Leistung Gewährleistung Abnahme Protokoll und "
    "der die das mit für auf nach bei von zum zur wird wurde werden sind ist nicht sowie gemäß "
    "2026 2027 EUR Stück Köln Berlin München Hamburg GmbH Herr Frau bitte Rückfrage Anlage"
)
WORDS = tuple(WORDS_TEXT.split())


@contextlib.contextmanager
def scratch_databases(admin_url: str, *names: str) -> Iterator[dict[str, str]]:
    """Empty databases (name -> URL), dropped afterwards."""
    created: dict[str, str] = {}
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for name in names:
                dbname = f"tresor_bench_{name}_{uuid.uuid4().hex[:10]}"
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                created[name] = backing.with_database(admin_url, dbname)
        yield created
    finally:
        for url in created.values():
            with contextlib.suppress(psycopg.Error):
                pg_store.drop_database(admin_url, pg_store.database_name(url))


def text_pool(rng: random.Random, size: int) -> bytes:
    """Text-like bytes: German-looking words and lines, compressible as real letters are."""
    out: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choices(WORDS, k=rng.randint(6, 16))) + f" {rng.randint(1, 99999)}\n"
        out.append(line)
        length += len(line.encode())
    return "".join(out).encode()[:size]


def load_documents(owner_url: str, tenant_id: uuid.UUID, *, count: int, size: int) -> float:
    """COPY `count` documents of `size` bytes, half random, half text-like; seconds taken."""
    started = time.monotonic()
    rng = random.Random(7)  # noqa: S311 - made-up data, not secrets
    pool = text_pool(rng, 8 * MIB)
    documents = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(owner_url) as conn, conn.cursor() as cur:
        contacts = [
            row[0]
            for row in cur.execute(
                "SELECT id FROM contacts WHERE tenant_id = %s LIMIT %s", (tenant_id, count)
            )
        ]
        with cur.copy(
            "COPY documents (id, tenant_id, filename, content_type, size_bytes, sha256, "
            "complete, contact_id) FROM STDIN"
        ) as copy:
            for n, document_id in enumerate(documents):
                kind = ("application/pdf", "text/plain")[n % 2]
                name = f"dokument-{n:05d}.{'pdf' if n % 2 == 0 else 'txt'}"
                contact = contacts[n % len(contacts)]
                copy.write_row((document_id, tenant_id, name, kind, size, "", True, contact))
        with cur.copy(
            "COPY document_chunks (tenant_id, document_id, seq, data) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "uuid", "int4", "bytea"])
            for n, document_id in enumerate(documents):
                for seq in range((size + CHUNK - 1) // CHUNK):
                    length = min(CHUNK, size - seq * CHUNK)
                    if n % 2 == 0:
                        data = os.urandom(length)
                    else:
                        start = rng.randrange(len(pool) - length)
                        data = pool[start : start + length]
                    copy.write_row((tenant_id, document_id, seq, data))
        conn.commit()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE documents")
        conn.execute("VACUUM ANALYZE document_chunks")
    return time.monotonic() - started


def database_bytes(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def run_timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds the command took, and its stdout; fails loudly on a non-zero exit."""
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ...: exit {done.returncode}: {done.stderr}")
    return elapsed, done.stdout


def backup_env(databases: dict[str, str], directory: Path, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_BACKUP_")}
    env.update(
        TRESOR_BACKUP_ENVIRONMENT="development",
        TRESOR_BACKUP_LOG_LEVEL="WARNING",
        TRESOR_BACKUP_AUTH_DATABASE_URL=databases["auth"],
        TRESOR_BACKUP_CRM_DATABASE_URL=databases["crm"],
        TRESOR_BACKUP_KEY=key,
        TRESOR_BACKUP_STORE="directory",
        TRESOR_BACKUP_DIRECTORY=str(directory),
    )
    return env


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Figures:
    contacts: int
    documents: int
    document_bytes: int
    load_seconds: float
    database_bytes: int
    pg_dump_seconds: float
    pg_dump_bytes: int
    pg_restore_seconds: float
    snapshot_seconds: float
    snapshot_bytes: int
    restore_seconds: float
    pg_dump_version: str

    @property
    def snapshot_ratio(self) -> float:
        return self.snapshot_seconds / self.pg_dump_seconds

    @property
    def restore_ratio(self) -> float:
        return self.restore_seconds / self.pg_restore_seconds


def measure(admin_url: str, work: Path, args: argparse.Namespace) -> Figures:
    tenant = uuid.uuid4()
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(scratch_databases(admin_url, "crm", "auth"))
        apply_migrations(source["crm"], CRM_MIGRATIONS)
        apply_migrations(source["auth"], AUTH_MIGRATIONS)
        print(f"loading {args.contacts:,} contacts ...", flush=True)
        load_seconds = load_data(source["crm"], [(tenant, args.contacts, args.contacts // 50)])
        print(f"  {load_seconds:.0f} s; loading {args.documents:,} documents ...", flush=True)
        document_bytes = args.documents * args.document_mib * MIB
        load_seconds += load_documents(
            source["crm"], tenant, count=args.documents, size=args.document_mib * MIB
        )
        size = database_bytes(source["crm"])
        print(f"  loaded in {load_seconds:.0f} s, crm database {size / MIB:,.0f} MiB", flush=True)
        with psycopg.connect(source["crm"]) as conn:
            tools = pg_store.find_tools(pg_store.server_major(conn))

        # The limit: plain pg_dump -Fc (default compression) to a file, pg_restore of it.
        dump = work / "plain.dump"
        pg_dump_seconds, _ = run_timed(
            [
                str(tools.pg_dump),
                "-Fc",
                "--no-password",
                f"--dbname={source['crm']}",
                "-f",
                str(dump),
            ]
        )
        print(f"pg_dump -Fc: {pg_dump_seconds:.1f} s, {dump.stat().st_size / MIB:,.0f} MiB")
        plain = stack.enter_context(scratch_databases(admin_url, "plain"))
        pg_restore_seconds, _ = run_timed(
            [
                str(tools.pg_restore),
                "--single-transaction",
                "--exit-on-error",
                "--no-password",
                f"--dbname={plain['plain']}",
                str(dump),
            ]
        )
        print(f"pg_restore: {pg_restore_seconds:.1f} s", flush=True)
        pg_dump_bytes = dump.stat().st_size
        dump.unlink()
        pg_store.drop_database(admin_url, pg_store.database_name(plain["plain"]))

        # The backup: snapshot of both databases, restore into empty ones, each a process.
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        store = work / "snapshots"
        env = backup_env(source, store, key)
        snapshot_seconds, out = run_timed([sys.executable, "-m", "tresor_backup", "snapshot"], env)
        snapshot_id = out.strip().splitlines()[-1]
        snapshot_bytes = tree_bytes(store)
        print(f"snapshot: {snapshot_seconds:.1f} s, {snapshot_bytes / MIB:,.0f} MiB", flush=True)
        target = stack.enter_context(scratch_databases(admin_url, "crm", "auth"))
        restore_seconds, _ = run_timed(
            [
                sys.executable,
                "-m",
                "tresor_backup",
                "restore",
                snapshot_id,
                "--target",
                f"crm={target['crm']}",
                "--target",
                f"auth={target['auth']}",
            ],
            env,
        )
        print(f"restore: {restore_seconds:.1f} s", flush=True)
        version = subprocess.run(  # noqa: S603
            [str(tools.pg_dump), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return Figures(
        contacts=args.contacts,
        documents=args.documents,
        document_bytes=document_bytes,
        load_seconds=load_seconds,
        database_bytes=size,
        pg_dump_seconds=pg_dump_seconds,
        pg_dump_bytes=pg_dump_bytes,
        pg_restore_seconds=pg_restore_seconds,
        snapshot_seconds=snapshot_seconds,
        snapshot_bytes=snapshot_bytes,
        restore_seconds=restore_seconds,
        pg_dump_version=version,
    )


def render_section(f: Figures, *, pg: str) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{len(os.sched_getaffinity(0))} CPUs ({cpu_model()}), {platform.system()} "
        f"{platform.release()}, CPython {platform.python_version()}, {pg}, {f.pg_dump_version}"
    )
    met = "met" if f.snapshot_ratio <= TARGET_RATIO else "NOT met"
    return "\n".join(
        [
            SECTION,
            "",
            "`make bench` (`python -m benchmarks.backup_snapshot`) bulk-loads a scratch `crm` "
            "database (the CRM's migrations) with COPY: one tenant with "
            f"{f.contacts:,} contacts and {f.contacts // 50:,} companies (crm_search's loader) "
            f"and {f.documents:,} documents of {f.document_bytes // f.documents // MIB} MiB in "
            "256 KiB chunks, half random bytes (incompressible) and half text-like; "
            f"{f.database_bytes / MIB:,.0f} MiB on disk, loaded in {f.load_seconds:.0f} s. "
            "A scratch `auth` database has the auth migrations and no tenants. The limit is "
            "plain `pg_dump -Fc` (its default compression) of the crm database to a file, and "
            "`pg_restore --single-transaction --exit-on-error` of that file into an empty "
            "database. The backup is `python -m tresor_backup snapshot` (both databases: "
            "table checksums, `pg_dump -Fc -Z0` piped through zstd level 3 and encryption, "
            "to a directory store) and `python -m tresor_backup restore` into empty "
            "databases (checksums of every part, decrypt, decompress, `pg_restore`), each run "
            "as its own process and timed from start to exit. PostgreSQL, the tools and the "
            "benchmark share the machine.",
            "",
            "| Step | Time s | Ratio to the limit | Size on disk MiB |",
            "|---|---:|---:|---:|",
            f"| `pg_dump -Fc` (crm) | {f.pg_dump_seconds:.1f} | 1.00 | "
            f"{f.pg_dump_bytes / MIB:,.0f} |",
            f"| backup snapshot (crm + auth) | {f.snapshot_seconds:.1f} | "
            f"{f.snapshot_ratio:.2f} | {f.snapshot_bytes / MIB:,.0f} |",
            f"| `pg_restore` (crm) | {f.pg_restore_seconds:.1f} | 1.00 | |",
            f"| backup restore (crm + auth) | {f.restore_seconds:.1f} | {f.restore_ratio:.2f} | |",
            "",
            f"Machine: {machine}. Date: {date}.",
            "",
            f"Target: snapshot within {TARGET_RATIO:g}× of plain pg_dump: {met} "  # noqa: RUF001
            f"({f.snapshot_ratio:.2f}×).",  # noqa: RUF001
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks.backup_snapshot", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--record", type=Path, metavar="FILE", help="rewrite our section of FILE")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the crm db")
    parser.add_argument("--documents", type=int, default=1024, help="documents in the crm db")
    parser.add_argument("--document-mib", type=int, default=1, help="MiB per document")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="tresor-bench-backup-"))
    try:
        with postgres_admin_url() as admin_url:
            figures = measure(admin_url, work, args)
            pg = postgres_version(admin_url)
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
