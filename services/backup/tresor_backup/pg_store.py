"""Everything that talks to PostgreSQL: tool selection, table checksums, erasures."""

import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


class PgToolError(Exception):
    """No usable pg_dump/pg_restore, or one of them failed."""


@dataclass(frozen=True)
class PgTools:
    pg_dump: Path
    pg_restore: Path
    major: int


def tool_major(binary: Path) -> int:
    out = subprocess.run(  # noqa: S603 - a path we found, fixed arguments
        [str(binary), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.search(r"\)\s*(\d+)", out)
    if not match:
        raise PgToolError(f"{binary}: cannot read its version from {out.strip()!r}")
    return int(match.group(1))


def _candidate_dirs(extra: Path | None) -> list[Path]:
    dirs: list[Path] = []
    if extra is not None:
        dirs.append(extra)
    found = shutil.which("pg_dump")
    if found:
        dirs.append(Path(found).resolve().parent)
    dirs.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin")))
    try:
        import pgserver

        dirs.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    return dirs


def find_tools(server_major: int, extra_dir: Path | None = None) -> PgTools:
    """The pg_dump/pg_restore closest to the server's version and not older than it."""
    seen: list[str] = []
    best: PgTools | None = None
    for directory in _candidate_dirs(extra_dir):
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if not (dump.is_file() and restore.is_file()):
            continue
        try:
            major = tool_major(dump)
        except (OSError, subprocess.SubprocessError, PgToolError):
            continue
        seen.append(f"{dump} ({major})")
        if major >= server_major and (best is None or major < best.major):
            best = PgTools(dump, restore, major)
    if best is None:
        raise PgToolError(
            f"no pg_dump of version {server_major} or newer for a PostgreSQL {server_major} "
            f"server; found: {', '.join(seen) or 'none'}. Install the PostgreSQL client "
            "tools or set TRESOR_BACKUP_PG_BIN_DIR"
        )
    return best


def server_major(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def server_version(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    return str(row[0])


def user_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [
        (str(schema), str(name))
        for schema, name in conn.execute(
            """SELECT n.nspname, c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p')
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                                 AND d.deptype = 'e')
               ORDER BY 1, 2"""
        ).fetchall()
    ]


def table_checksums(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Rows and an order-independent checksum (sum of 64-bit md5 prefixes) per table.

    Runs in the caller's transaction, so it sees the caller's snapshot.
    """
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    conn.execute("SET LOCAL extra_float_digits = 1")
    result: dict[str, dict[str, Any]] = {}
    for schema, name in user_tables(conn):
        query = sql.SQL(
            "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)"
            "::bigint), 0)::text FROM {}.{} t"
        ).format(sql.Identifier(schema), sql.Identifier(name))
        row = conn.execute(query).fetchone()
        assert row is not None
        result[f"{schema}.{name}"] = {"rows": int(row[0]), "checksum": str(row[1])}
    return result


def is_empty(conn: psycopg.Connection[Any]) -> bool:
    return not user_tables(conn)


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def create_database(url: str, dbname: str) -> str:
    """Create an empty database on the server of `url`; its URL."""
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_database(url, dbname)


def drop_database(url: str, dbname: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


# -- erasures (the CRM's GDPR Art. 17 records) --

_ERASURE_COLUMNS = "id, tenant_id, record_type, record_id, erased_at, erased_by, reason"


def read_erasures(url: str) -> list[dict[str, Any]]:
    """Every erasure record of every tenant; none where the database has no erasures table."""
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError:
        return []
    with conn:
        present = conn.execute("SELECT to_regclass('public.erasures')").fetchone()
        if not present or present[0] is None:
            return []
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        return list(cur.execute(f"SELECT {_ERASURE_COLUMNS} FROM erasures ORDER BY erased_at"))


def reapply_erasures(url: str, records: list[dict[str, Any]]) -> int:
    """Keep the records and erase again each contact they name, tenant by tenant.

    The same rows as the CRM's own erasure: the contact's history and that of its
    activities, tasks and documents; its activities, tasks, documents (chunks cascade),
    deal links; the contact. Search entries follow by the CRM's trigger.
    """
    erased = 0
    by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for record in records:
        by_tenant.setdefault(record["tenant_id"], []).append(record)
    with psycopg.connect(url) as conn:
        for tenant_id, tenant_records in by_tenant.items():
            conn.execute("SELECT set_config('tresor.tenant_id', %s, true)", (str(tenant_id),))
            for record in tenant_records:
                conn.execute(
                    f"INSERT INTO erasures ({_ERASURE_COLUMNS}) "
                    "VALUES (%(id)s, %(tenant_id)s, %(record_type)s, %(record_id)s, "
                    "%(erased_at)s, %(erased_by)s, %(reason)s) ON CONFLICT (id) DO NOTHING",
                    record,
                )
                if record["record_type"] != "contact":
                    continue
                params = {"id": record["record_id"]}
                conn.execute(
                    """DELETE FROM record_history h
                       WHERE (h.record_type = 'contact' AND h.record_id = %(id)s)
                          OR (h.record_type IN ('activity', 'note') AND h.record_id IN
                                (SELECT id FROM activities WHERE contact_id = %(id)s))
                          OR (h.record_type = 'task' AND h.record_id IN
                                (SELECT id FROM tasks WHERE contact_id = %(id)s))
                          OR (h.record_type = 'document' AND h.record_id IN
                                (SELECT id FROM documents WHERE contact_id = %(id)s))""",
                    params,
                )
                for table in ("activities", "tasks", "documents", "deal_contacts"):
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE contact_id = %(id)s").format(
                            sql.Identifier(table)
                        ),
                        params,
                    )
                cur = conn.execute("DELETE FROM contacts WHERE id = %(id)s", params)
                erased += cur.rowcount
            conn.commit()
    return erased
