"""The auth database: tenants, users and the audit log. The only module with SQL."""

import asyncio
import contextlib
import ipaddress
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tresor_auth.audit import AuditRecord, StoredAuditEvent, event_hash
from tresor_auth.errors import AlreadyExists, NotFound, StoreUnavailable
from tresor_auth.models import AuditQuery, Role, Tenant, TenantPolicy, User
from tresor_auth.networks import IpBinding, IpNetwork

P = ParamSpec("P")
T = TypeVar("T")
Row = dict[str, Any]
Conn = psycopg.AsyncConnection[Row]

_USER_COLUMNS = (
    "id, tenant_id, username, display_name, roles, active, allowlist::text[] AS allowlist,"
    " created_at, password_changed_at"
)
_TENANT_COLUMNS = (
    "id, slug, display_name, idle_timeout_seconds, absolute_lifetime_seconds, ip_binding,"
    " max_sessions_per_user, require_totp, created_at"
)


def _unavailable(
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Database down or too slow becomes StoreUnavailable: callers fail closed."""

    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable("the auth database is unavailable") from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _tenant(row: Row) -> Tenant:
    return Tenant(
        id=row["id"],
        slug=row["slug"],
        display_name=row["display_name"],
        policy=TenantPolicy(
            idle_timeout_seconds=row["idle_timeout_seconds"],
            absolute_lifetime_seconds=row["absolute_lifetime_seconds"],
            ip_binding=IpBinding(row["ip_binding"]),
            max_sessions_per_user=row["max_sessions_per_user"],
            require_totp=row["require_totp"],
        ),
        created_at=row["created_at"],
    )


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        tenant_id=row["tenant_id"],
        username=row["username"],
        display_name=row["display_name"],
        roles=tuple(Role(role) for role in row["roles"]),
        active=row["active"],
        allowlist=tuple(ipaddress.ip_network(net) for net in row["allowlist"]),
        created_at=row["created_at"],
        password_changed_at=row["password_changed_at"],
    )


def _stored_event(row: Row) -> StoredAuditEvent:
    return StoredAuditEvent(
        chain_id=row["chain_id"],
        seq=row["seq"],
        occurred_at=row["occurred_at"],
        event=row["event"],
        actor_user_id=row["actor_user_id"],
        subject_user_id=row["subject_user_id"],
        client_ip=str(row["client_ip"]) if row["client_ip"] is not None else None,
        details=row["details"],
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
    )


class AuthDatabase:
    def __init__(
        self, pool: psycopg_pool.AsyncConnectionPool[Conn], *, heartbeat_seconds: float = 1.0
    ) -> None:
        self._pool = pool
        self._heartbeat_seconds = heartbeat_seconds
        self._last_reachable = -math.inf
        self._heartbeat: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, url: str, *, size: int, timeout_seconds: float, heartbeat_seconds: float = 1.0
    ) -> "AuthDatabase":
        pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=size,
            timeout=timeout_seconds,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(timeout_seconds))},
            connection_class=psycopg.AsyncConnection[Row],
            open=False,
        )
        # Start even if the database is down for now: calls fail closed until it is back.
        await pool.open(wait=False)
        database = cls(pool, heartbeat_seconds=heartbeat_seconds)
        with contextlib.suppress(StoreUnavailable):
            await database.ping()
        database._heartbeat = asyncio.create_task(database._beat(), name="auth-db-heartbeat")
        return database

    async def close(self) -> None:
        if self._heartbeat:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._pool.close()

    async def _beat(self) -> None:
        """Probe the database so Authorize can fail closed without a query of its own."""
        while True:
            with contextlib.suppress(StoreUnavailable):
                await self.ping()
            await asyncio.sleep(self._heartbeat_seconds)

    def ensure_reachable(self) -> None:
        """Raise unless the database answered within the last few heartbeats."""
        silent_for = time.monotonic() - self._last_reachable
        if silent_for > 3 * self._heartbeat_seconds:
            raise StoreUnavailable("the auth database is unavailable")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._pool.connection() as conn, conn.transaction():
            yield conn

    # -- tenants -------------------------------------------------------------

    @_unavailable
    async def create_tenant(
        self, *, slug: str, display_name: str, policy: TenantPolicy, audit: AuditRecord
    ) -> Tenant:
        tenant_id = uuid.uuid4()
        try:
            async with self._transaction() as conn:
                cur = await conn.execute(
                    f"""INSERT INTO tenants (id, slug, display_name, idle_timeout_seconds,
                            absolute_lifetime_seconds, ip_binding, max_sessions_per_user,
                            require_totp)
                        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                        RETURNING {_TENANT_COLUMNS}""",
                    (
                        tenant_id,
                        slug,
                        display_name,
                        policy.idle_timeout_seconds,
                        policy.absolute_lifetime_seconds,
                        policy.ip_binding.value,
                        policy.max_sessions_per_user,
                        policy.require_totp,
                    ),
                )
                row = await cur.fetchone()
                assert row is not None
                await self._append(conn, replace(audit, tenant_id=tenant_id))
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"a tenant named {slug!r} exists already") from None
        return _tenant(row)

    @_unavailable
    async def update_tenant(
        self,
        tenant_id: uuid.UUID,
        *,
        display_name: str,
        policy: TenantPolicy,
        audit: AuditRecord,
    ) -> Tenant:
        async with self._transaction() as conn:
            cur = await conn.execute(
                f"""UPDATE tenants SET display_name = %s, idle_timeout_seconds = %s,
                        absolute_lifetime_seconds = %s, ip_binding = %s,
                        max_sessions_per_user = %s, require_totp = %s, updated_at = now()
                    WHERE id = %s RETURNING {_TENANT_COLUMNS}""",
                (
                    display_name,
                    policy.idle_timeout_seconds,
                    policy.absolute_lifetime_seconds,
                    policy.ip_binding.value,
                    policy.max_sessions_per_user,
                    policy.require_totp,
                    tenant_id,
                ),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound("no such tenant")
            await self._append(conn, audit)
        return _tenant(row)

    @_unavailable
    async def get_tenant(self, tenant_id: uuid.UUID) -> Tenant:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE id = %s", (tenant_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound("no such tenant")
        return _tenant(row)

    @_unavailable
    async def find_tenant(self, slug: str) -> Tenant | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE slug = %s", (slug,)
            )
            row = await cur.fetchone()
        return _tenant(row) if row else None

    # -- users ---------------------------------------------------------------

    @_unavailable
    async def create_user(
        self,
        *,
        tenant_id: uuid.UUID,
        username: str,
        display_name: str,
        roles: Sequence[Role],
        allowlist: Sequence[IpNetwork],
        password_hash: str,
        audit: AuditRecord,
    ) -> User:
        user_id = uuid.uuid4()
        try:
            async with self._transaction() as conn:
                cur = await conn.execute(
                    f"""INSERT INTO users (id, tenant_id, username, display_name, roles,
                            allowlist, password_hash)
                        VALUES (%s, %s, %s, %s, %s, %s::cidr[], %s)
                        RETURNING {_USER_COLUMNS}""",
                    (
                        user_id,
                        tenant_id,
                        username,
                        display_name,
                        [role.value for role in roles],
                        [str(net) for net in allowlist],
                        password_hash,
                    ),
                )
                row = await cur.fetchone()
                assert row is not None
                await self._append(conn, replace(audit, subject_user_id=user_id))
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"a user named {username!r} exists already") from None
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound("no such tenant") from None
        return _user(row)

    @_unavailable
    async def update_user(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        audit: AuditRecord,
        display_name: str | None = None,
        roles: Sequence[Role] | None = None,
        active: bool | None = None,
        allowlist: Sequence[IpNetwork] | None = None,
        password_hash: str | None = None,
    ) -> User:
        async with self._transaction() as conn:
            cur = await conn.execute(
                f"""UPDATE users SET
                        display_name = coalesce(%s, display_name),
                        roles = coalesce(%s, roles),
                        active = coalesce(%s, active),
                        allowlist = coalesce(%s::cidr[], allowlist),
                        password_hash = coalesce(%s, password_hash),
                        password_changed_at = CASE WHEN %s::text IS NULL
                            THEN password_changed_at ELSE now() END,
                        updated_at = now()
                    WHERE tenant_id = %s AND id = %s
                    RETURNING {_USER_COLUMNS}""",
                (
                    display_name,
                    [role.value for role in roles] if roles is not None else None,
                    active,
                    [str(net) for net in allowlist] if allowlist is not None else None,
                    password_hash,
                    password_hash,
                    tenant_id,
                    user_id,
                ),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound("no such user in this tenant")
            await self._append(conn, audit)
        return _user(row)

    @_unavailable
    async def rehash_password(self, user_id: uuid.UUID, old_hash: str, new_hash: str) -> None:
        """Store a hash with current parameters, unless the password changed meanwhile."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s AND password_hash = %s",
                (new_hash, user_id, old_hash),
            )

    @_unavailable
    async def get_user(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = %s AND id = %s",
                (tenant_id, user_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound("no such user in this tenant")
        return _user(row)

    @_unavailable
    async def get_user_by_id(self, user_id: uuid.UUID) -> User | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
            row = await cur.fetchone()
        return _user(row) if row else None

    @_unavailable
    async def find_login(self, tenant_slug: str, username: str) -> tuple[Tenant, User, str] | None:
        """Tenant, user and password hash for a login, or None when either is unknown."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"""SELECT {
                    ", ".join(
                        "t." + c.strip() + " AS t_" + c.strip() for c in _TENANT_COLUMNS.split(",")
                    )
                },
                           u.id, u.tenant_id, u.username, u.display_name, u.roles, u.active,
                           u.allowlist::text[] AS allowlist, u.created_at,
                           u.password_changed_at, u.password_hash
                    FROM tenants t JOIN users u ON u.tenant_id = t.id
                    WHERE t.slug = %s AND u.username = %s""",
                (tenant_slug, username),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        tenant_row = {key[2:]: value for key, value in row.items() if key.startswith("t_")}
        return _tenant(tenant_row), _user(row), row["password_hash"]

    @_unavailable
    async def list_users(self, tenant_id: uuid.UUID) -> list[User]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = %s ORDER BY username",
                (tenant_id,),
            )
            rows = await cur.fetchall()
        return [_user(row) for row in rows]

    # -- audit log -----------------------------------------------------------

    @_unavailable
    async def append_audit(self, record: AuditRecord) -> int:
        async with self._transaction() as conn:
            return await self._append(conn, record)

    async def _append(self, conn: Conn, record: AuditRecord) -> int:
        """Add one event to its chain; the head row lock orders concurrent writers."""
        chain_id = record.chain_id
        await conn.execute(
            """INSERT INTO audit_chain_heads (chain_id, last_seq, last_hash)
               VALUES (%s, 0, %s) ON CONFLICT (chain_id) DO NOTHING""",
            (chain_id, bytes(32)),
        )
        cur = await conn.execute(
            "SELECT last_seq, last_hash FROM audit_chain_heads WHERE chain_id = %s FOR UPDATE",
            (chain_id,),
        )
        head = await cur.fetchone()
        assert head is not None
        seq = int(head["last_seq"]) + 1
        prev_hash = bytes(head["last_hash"])
        # Microseconds: what timestamptz keeps, so the hash can be recomputed from the row.
        occurred_at = datetime.now(UTC)
        # Hash the details as jsonb will give them back (it normalises numbers such as -0.0).
        cur = await conn.execute(
            "SELECT %s::jsonb AS details",
            (Jsonb(json.loads(json.dumps(record.details, default=str))),),
        )
        stored = await cur.fetchone()
        assert stored is not None
        details = stored["details"]
        digest = event_hash(
            prev_hash=prev_hash,
            chain_id=chain_id,
            seq=seq,
            occurred_at=occurred_at,
            event=record.event,
            actor_user_id=record.actor_user_id,
            subject_user_id=record.subject_user_id,
            client_ip=record.client_ip,
            details=details,
        )
        await conn.execute(
            """INSERT INTO audit_events (chain_id, seq, occurred_at, event, actor_user_id,
                   subject_user_id, client_ip, details, prev_hash, hash)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                chain_id,
                seq,
                occurred_at,
                record.event,
                record.actor_user_id,
                record.subject_user_id,
                record.client_ip,
                Jsonb(details),
                prev_hash,
                digest,
            ),
        )
        await conn.execute(
            "UPDATE audit_chain_heads SET last_seq = %s, last_hash = %s WHERE chain_id = %s",
            (seq, digest, chain_id),
        )
        return seq

    @_unavailable
    async def list_audit(self, chain_id: uuid.UUID, query: AuditQuery) -> list[StoredAuditEvent]:
        conditions = ["chain_id = %s"]
        params: list[Any] = [chain_id]
        if query.events:
            conditions.append("event = ANY(%s)")
            params.append(list(query.events))
        if query.user_id:
            conditions.append("(actor_user_id = %s OR subject_user_id = %s)")
            params += [query.user_id, query.user_id]
        if query.since:
            conditions.append("occurred_at >= %s")
            params.append(query.since)
        if query.until:
            conditions.append("occurred_at < %s")
            params.append(query.until)
        if query.before_seq is not None:
            conditions.append("seq < %s")
            params.append(query.before_seq)
        params.append(query.limit)
        sql = (
            "SELECT * FROM audit_events WHERE "
            + " AND ".join(conditions)
            + " ORDER BY seq DESC LIMIT %s"
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql.encode(), params)
            rows = await cur.fetchall()
        return [_stored_event(row) for row in rows]

    @_unavailable
    async def audit_chain(
        self, chain_id: uuid.UUID
    ) -> tuple[list[StoredAuditEvent], int | None, bytes | None]:
        """Every event of a chain in order, with the head, in one snapshot."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur = await conn.execute(
                "SELECT last_seq, last_hash FROM audit_chain_heads WHERE chain_id = %s",
                (chain_id,),
            )
            head = await cur.fetchone()
            cur = await conn.execute(
                "SELECT * FROM audit_events WHERE chain_id = %s ORDER BY seq", (chain_id,)
            )
            rows = await cur.fetchall()
        events = [_stored_event(row) for row in rows]
        if head is None:
            return events, None, None
        return events, head["last_seq"], bytes(head["last_hash"])

    @_unavailable
    async def ping(self) -> None:
        async with self._pool.connection(timeout=self._heartbeat_seconds) as conn:
            await conn.execute("SELECT 1")
        self._last_reachable = time.monotonic()
