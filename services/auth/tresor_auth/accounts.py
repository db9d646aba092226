"""Tenants and users: the administrative rules, who may change what, and their audit.

An actor is either the platform (no actor: operators through tresorctl, with
the service token) or a user who must be an active admin of the tenant that
the call concerns. Every change is written to the tenant's audit log in the
same transaction, and every change that affects access reaches Redis at once,
so the next Authorize on any replica sees it.
"""

import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tresor_auth.audit import AuditRecord, ChainVerdict, StoredAuditEvent, verify_chain
from tresor_auth.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from tresor_auth.models import AuditQuery, Role, Tenant, TenantPolicy, User, UserState
from tresor_auth.networks import IpBinding, parse_allowlist, parse_client_ip
from tresor_auth.passwords import Passwords
from tresor_auth.pg_store import AuthDatabase
from tresor_auth.redis_store import SessionStore
from tresor_auth.sessions import SessionService

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
MAX_DISPLAY_NAME = 200
MAX_PAGE_SIZE = 500
MAX_DETAILS_BYTES = 16 * 1024
_EVENT = re.compile(r"^[a-z][a-z_]{1,40}(\.[a-z][a-z_]{1,40}){1,3}$")


@dataclass(frozen=True)
class Actor:
    """None of these set: the platform itself."""

    tenant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None

    @property
    def is_platform(self) -> bool:
        return self.user_id is None


@dataclass(frozen=True)
class PlatformLimits:
    default_idle_timeout_seconds: int
    default_absolute_lifetime_seconds: int
    max_idle_timeout_seconds: int
    max_absolute_lifetime_seconds: int
    default_max_sessions_per_user: int


@dataclass(frozen=True)
class PolicyChange:
    """0 / None: leave as it is (or the platform default for a new tenant)."""

    idle_timeout_seconds: int = 0
    absolute_lifetime_seconds: int = 0
    ip_binding: IpBinding | None = None
    max_sessions_per_user: int = 0
    require_totp: bool | None = None


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(f"{what}: {value[:64]!r} is not a valid id") from None


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise InvalidArgument(
            "slug: 2 to 63 characters, lower-case letters, digits and '-', not starting with '-'"
        )
    return slug


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not name:
        raise InvalidArgument("username: must not be empty")
    if not _USERNAME.match(name):
        raise InvalidArgument(
            "username: up to 128 characters: letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def check_display_name(value: str, *, required: bool) -> str:
    name = value.strip()
    if required and not name:
        raise InvalidArgument("display_name: must not be empty")
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidArgument(f"display_name: at most {MAX_DISPLAY_NAME} characters")
    if any(ord(ch) < 32 for ch in name):
        raise InvalidArgument("display_name: control characters are not allowed")
    return name


def check_roles(roles: Sequence[Role]) -> tuple[Role, ...]:
    unique = tuple(dict.fromkeys(roles))
    if not unique:
        raise InvalidArgument("roles: at least one role (admin or user) is needed")
    return unique


class AccountService:
    def __init__(
        self,
        *,
        database: AuthDatabase,
        store: SessionStore,
        passwords: Passwords,
        sessions: SessionService,
        limits: PlatformLimits,
    ) -> None:
        self._db = database
        self._store = store
        self._passwords = passwords
        self._sessions = sessions
        self._limits = limits

    # -- who may act ---------------------------------------------------------

    async def check_actor(self, actor: Actor, tenant_id: uuid.UUID) -> None:
        """The platform may act anywhere; a user only as an active admin of that tenant."""
        if actor.is_platform:
            if actor.tenant_id is not None:
                raise InvalidArgument("actor: a tenant without a user is not an actor")
            return
        assert actor.user_id is not None
        if actor.tenant_id != tenant_id:
            raise PermissionDenied("an admin may act only within their own tenant")
        try:
            user = await self._db.get_user(tenant_id, actor.user_id)
        except NotFound:
            raise PermissionDenied("the acting user does not exist in this tenant") from None
        if not user.active or Role.ADMIN not in user.roles:
            raise PermissionDenied("only an active admin of this tenant may do this")

    def _record(
        self, actor: Actor, event: str, tenant_id: uuid.UUID, **details: Any
    ) -> AuditRecord:
        return AuditRecord(
            event,
            tenant_id=tenant_id,
            actor_user_id=actor.user_id,
            details={"actor": "platform" if actor.is_platform else "admin", **details},
        )

    # -- tenants -------------------------------------------------------------

    def _policy(self, change: PolicyChange, base: TenantPolicy | None) -> TenantPolicy:
        limits = self._limits
        idle = change.idle_timeout_seconds or (
            base.idle_timeout_seconds if base else limits.default_idle_timeout_seconds
        )
        lifetime = change.absolute_lifetime_seconds or (
            base.absolute_lifetime_seconds if base else limits.default_absolute_lifetime_seconds
        )
        if idle > limits.max_idle_timeout_seconds:
            raise InvalidArgument(
                f"idle_timeout_seconds: at most {limits.max_idle_timeout_seconds} on this platform"
            )
        if lifetime > limits.max_absolute_lifetime_seconds:
            raise InvalidArgument(
                "absolute_lifetime_seconds: at most "
                f"{limits.max_absolute_lifetime_seconds} on this platform"
            )
        if idle > lifetime:
            raise InvalidArgument("idle_timeout_seconds may not exceed absolute_lifetime_seconds")
        max_sessions = change.max_sessions_per_user or (
            base.max_sessions_per_user if base else limits.default_max_sessions_per_user
        )
        if max_sessions > 100:
            raise InvalidArgument("max_sessions_per_user: at most 100")
        require_totp = (
            change.require_totp
            if change.require_totp is not None
            else (base.require_totp if base else False)
        )
        if require_totp:
            raise FailedPrecondition("require_totp: two-factor login is not available yet")
        return TenantPolicy(
            idle_timeout_seconds=idle,
            absolute_lifetime_seconds=lifetime,
            ip_binding=change.ip_binding or (base.ip_binding if base else IpBinding.STRICT),
            max_sessions_per_user=max_sessions,
            require_totp=require_totp,
        )

    async def create_tenant(
        self, actor: Actor, *, slug: str, display_name: str, policy: PolicyChange
    ) -> Tenant:
        if not actor.is_platform:
            raise PermissionDenied("only the platform creates tenants")
        slug = check_slug(slug.strip().lower())
        name = check_display_name(display_name, required=True)
        settled = self._policy(policy, None)
        return await self._db.create_tenant(
            slug=slug,
            display_name=name,
            policy=settled,
            audit=AuditRecord(
                "tenant.created",
                details={"actor": "platform", "slug": slug, "policy": _policy_dict(settled)},
            ),
        )

    async def update_tenant(
        self, actor: Actor, tenant_id: uuid.UUID, *, display_name: str, policy: PolicyChange
    ) -> Tenant:
        await self.check_actor(actor, tenant_id)
        current = await self._db.get_tenant(tenant_id)
        name = check_display_name(display_name, required=False) or current.display_name
        settled = self._policy(policy, current.policy)
        return await self._db.update_tenant(
            tenant_id,
            display_name=name,
            policy=settled,
            audit=self._record(
                actor,
                "tenant.updated",
                tenant_id,
                display_name=name,
                policy=_policy_dict(settled),
            ),
        )

    async def get_tenant(self, actor: Actor, tenant_id: uuid.UUID) -> Tenant:
        await self.check_actor(actor, tenant_id)
        return await self._db.get_tenant(tenant_id)

    async def find_tenant(self, actor: Actor, slug: str) -> Tenant:
        tenant = await self._db.find_tenant(slug.strip().lower())
        if tenant is None:
            raise NotFound("no such tenant")
        await self.check_actor(actor, tenant.id)
        return tenant

    # -- users ---------------------------------------------------------------

    async def create_user(
        self,
        actor: Actor,
        tenant_id: uuid.UUID,
        *,
        username: str,
        display_name: str,
        password: str,
        roles: Sequence[Role],
        allowlist: Sequence[str],
    ) -> User:
        await self.check_actor(actor, tenant_id)
        name = check_username(username)
        shown = check_display_name(display_name, required=False)
        checked_roles = check_roles(roles)
        networks = parse_allowlist(allowlist)
        self._passwords.check_strength(password, username=name)
        return await self._db.create_user(
            tenant_id=tenant_id,
            username=name,
            display_name=shown,
            roles=checked_roles,
            allowlist=networks,
            password_hash=await self._passwords.hash_async(password),
            audit=self._record(
                actor,
                "user.created",
                tenant_id,
                username=name,
                roles=[r.value for r in checked_roles],
                allowlist=[str(n) for n in networks],
            ),
        )

    async def update_user(
        self,
        actor: Actor,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        display_name: str,
        roles: Sequence[Role],
        activate: bool,
    ) -> User:
        await self.check_actor(actor, tenant_id)
        shown = check_display_name(display_name, required=False) or None
        new_roles = check_roles(roles) if roles else None
        if new_roles is not None and Role.ADMIN not in new_roles and actor.user_id == user_id:
            raise FailedPrecondition("an admin cannot take away their own admin role")
        changes: dict[str, Any] = {}
        if shown is not None:
            changes["display_name"] = shown
        if new_roles is not None:
            changes["roles"] = [r.value for r in new_roles]
        if activate:
            changes["active"] = True
        await self._store.forget_user_state(user_id)
        user = await self._db.update_user(
            tenant_id,
            user_id,
            display_name=shown,
            roles=new_roles,
            active=True if activate else None,
            audit=self._record(actor, "user.updated", tenant_id, changes=changes),
        )
        await self._store.put_user_state(user.id, UserState.of(user))
        return user

    async def get_user(self, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User:
        await self.check_actor(actor, tenant_id)
        return await self._db.get_user(tenant_id, user_id)

    async def list_users(self, actor: Actor, tenant_id: uuid.UUID) -> list[User]:
        await self.check_actor(actor, tenant_id)
        return await self._db.list_users(tenant_id)

    async def set_allowlist(
        self, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID, allowlist: Sequence[str]
    ) -> User:
        await self.check_actor(actor, tenant_id)
        networks = parse_allowlist(allowlist)
        await self._store.forget_user_state(user_id)
        user = await self._db.update_user(
            tenant_id,
            user_id,
            allowlist=networks,
            audit=self._record(
                actor, "user.allowlist_set", tenant_id, allowlist=[str(n) for n in networks]
            ),
        )
        await self._store.put_user_state(user.id, UserState.of(user))
        return user

    async def change_password(
        self, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID, new_password: str
    ) -> int:
        """New password; every session of the user ends."""
        await self.check_actor(actor, tenant_id)
        user = await self._db.get_user(tenant_id, user_id)
        self._passwords.check_strength(new_password, username=user.username)
        new_hash = await self._passwords.hash_async(new_password)
        await self._store.forget_user_state(user_id)
        changed = await self._db.update_user(
            tenant_id,
            user_id,
            password_hash=new_hash,
            audit=self._record(actor, "user.password_changed", tenant_id),
        )
        # The new credential stamp voids every session from before, even one whose
        # login raced this change.
        await self._store.put_user_state(user_id, UserState.of(changed))
        return await self._sessions.revoke_user_sessions(
            tenant_id, user_id, actor_user_id=actor.user_id, cause="password_changed"
        )

    async def disable_user(self, actor: Actor, tenant_id: uuid.UUID, user_id: uuid.UUID) -> User:
        await self.check_actor(actor, tenant_id)
        if actor.user_id == user_id:
            raise FailedPrecondition("an admin cannot disable themselves")
        await self._store.forget_user_state(user_id)
        user = await self._db.update_user(
            tenant_id,
            user_id,
            active=False,
            audit=self._record(actor, "user.disabled", tenant_id),
        )
        # State first: even if revoking fails half-way, Authorize already refuses.
        await self._store.put_user_state(user.id, UserState.of(user))
        await self._sessions.revoke_user_sessions(
            tenant_id, user_id, actor_user_id=actor.user_id, cause="user_disabled"
        )
        return user

    # -- audit log -----------------------------------------------------------

    async def audit_events(
        self, actor: Actor, tenant_id: uuid.UUID, query: AuditQuery
    ) -> list[StoredAuditEvent]:
        await self.check_actor(actor, tenant_id)
        if not 1 <= query.limit <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size: 1 to {MAX_PAGE_SIZE}")
        return await self._db.list_audit(tenant_id, query)

    async def record_service_event(
        self,
        tenant_id: uuid.UUID,
        *,
        event: str,
        actor_user_id: uuid.UUID | None,
        client_ip: str | None,
        details_json: str,
    ) -> int:
        """An event another service saw (a download, an erasure, an export)."""
        if not _EVENT.match(event):
            raise InvalidArgument("event: a dotted lower-case name like document.downloaded")
        if len(details_json.encode()) > MAX_DETAILS_BYTES:
            raise InvalidArgument(f"details_json: at most {MAX_DETAILS_BYTES} bytes")
        if "\\u0000" in details_json or "\x00" in details_json:
            raise InvalidArgument("details_json: NUL characters are not allowed")
        try:
            details = json.loads(details_json or "{}", parse_constant=_no_constants)
        except (ValueError, RecursionError):
            raise InvalidArgument("details_json: not JSON") from None
        if not isinstance(details, dict):
            raise InvalidArgument("details_json: must be a JSON object")
        if not _finite(details):
            raise InvalidArgument("details_json: numbers must be finite")
        ip = str(parse_client_ip(client_ip)) if client_ip else None
        await self._db.get_tenant(tenant_id)
        return await self._db.append_audit(
            AuditRecord(
                event,
                tenant_id=tenant_id,
                actor_user_id=actor_user_id,
                client_ip=ip,
                details=details,
            )
        )

    async def verify_audit(self, actor: Actor, tenant_id: uuid.UUID) -> ChainVerdict:
        await self.check_actor(actor, tenant_id)
        events, head_seq, head_hash = await self._db.audit_chain(tenant_id)
        return verify_chain(events, head_seq=head_seq, head_hash=head_hash)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _policy_dict(policy: TenantPolicy) -> dict[str, Any]:
    return {
        "idle_timeout_seconds": policy.idle_timeout_seconds,
        "absolute_lifetime_seconds": policy.absolute_lifetime_seconds,
        "ip_binding": policy.ip_binding.value,
        "max_sessions_per_user": policy.max_sessions_per_user,
        "require_totp": policy.require_totp,
    }
