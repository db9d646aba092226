"""Databases, roles, secrets and the demo tenant for the local stack (idempotent)."""

import base64
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tresor_common.identity import generate_private_key_pem, load_private_key, public_key_pem

AUTH_DATABASE = "auth"
AUTH_APP_ROLE = "tresor_auth_app"
AUTH_RUNTIME_ROLE = "tresor_auth_runtime"
CRM_DATABASE = "crm"
CRM_APP_ROLE = "tresor_crm_app"
CRM_RUNTIME_ROLE = "tresor_crm_runtime"
BACKUP_EXPORT_ROLE = "tresor_backup_export"


def with_database(url: str, dbname: str, *, user: str | None = None, password: str = "") -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rpartition("@")[2]
        netloc = quote(user) + (":" + quote(password) if password else "") + "@" + host
    return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, ""))


def stored_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret kept in a 0600 file, so a restart keeps logins and tokens valid."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    path.touch(mode=0o600)
    path.write_text(value + "\n", encoding="utf-8")
    return value


def stored_key(path: Path) -> Path:
    """32 random bytes, base64, in a 0600 file: the backup key. Losing it loses the backups."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n", encoding="utf-8")
    return path


def identity_public_key(signing_key_file: Path) -> str:
    """The PEM public key of the gate's signing key: what the CRM verifies identities with."""
    return public_key_pem(load_private_key(signing_key_file.read_text(encoding="utf-8")))


def stored_signing_key(path: Path) -> Path:
    """The gate's Ed25519 identity signing key (PEM), made once and kept 0600."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(generate_private_key_pem(), encoding="utf-8")
    return path


def ensure_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def ensure_login_role(admin_url: str, role: str, password: str, member_of: str) -> None:
    """The runtime login role, a member of the group role the migrations grant to.

    Never a superuser and never exempt from row-level security, whatever it was before.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        statement = (
            "ALTER ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}"
            if exists
            else "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}"
        )
        conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(role))
        )


def ensure_export_role(admin_url: str, password: str) -> str:
    """The backup's read-only export role on `crm`: SELECT on what an export reads, bound by
    row-level security (NOBYPASSRLS), so each export stays inside its tenant. Its URL."""
    crm_url = with_database(admin_url, CRM_DATABASE)
    role = sql.Identifier(BACKUP_EXPORT_ROLE)
    with psycopg.connect(crm_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (BACKUP_EXPORT_ROLE,)
        ).fetchone()
        statement = (
            "ALTER ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}"
            if exists
            else "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}"
        )
        conn.execute(sql.SQL(statement).format(role, sql.Literal(password)))
        conn.execute(
            sql.SQL(
                "GRANT SELECT ON documents, document_chunks, contacts, companies, deals TO {}"
            ).format(role)
        )
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION current_tenant() TO {}").format(role))
    return with_database(admin_url, CRM_DATABASE, user=BACKUP_EXPORT_ROLE, password=password)
